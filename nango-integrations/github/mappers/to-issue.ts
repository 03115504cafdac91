import type { GithubIssue } from '../../models';

export function toIssue(issue: any, owner: string, repo: string): GithubIssue {
    return {
        id: String(issue.id),
        owner,
        repo,
        issue_number: issue.number,
        title: issue.title,
        state: issue.state,
        author: issue.user?.login ?? '',
        author_id: issue.user?.id ?? 0,
        body: issue.body ?? null,
        labels: (issue.labels ?? []).map((label: any) => (typeof label === 'string' ? label : label.name)),
        date_created: issue.created_at,
        date_last_modified: issue.updated_at,
    };
}
