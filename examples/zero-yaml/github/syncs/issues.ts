import { createSync } from 'nango';
import { z } from 'zod';

const GithubIssue = z.object({
    id: z.string(),
    owner: z.string(),
    repo: z.string(),
    issue_number: z.number(),
    title: z.string(),
    state: z.string(),
    author: z.string(),
    author_id: z.number(),
    body: z.string().nullable(),
    labels: z.array(z.string()),
    date_created: z.string().datetime(),
    date_last_modified: z.string().datetime()
});

// Issues (not pull requests) of the repositories the connection's metadata lists, since the last run.
const sync = createSync({
    description: 'Issues (not pull requests) of the repositories listed in the connection metadata.',
    version: '1.0.0',
    frequency: 'every hour',
    syncType: 'incremental',
    endpoints: [{ method: 'GET', path: '/github/issues' }],
    metadata: z.object({ repositories: z.array(z.string()) }),
    models: { GithubIssue },
    exec: async (nango) => {
        const { repositories = [] } = (await nango.getMetadata()) || {};
        for (const fullName of repositories) {
            const [owner, repo] = fullName.split('/');
            const params: Record<string, string> = { state: 'all', sort: 'updated', direction: 'asc' };
            if (nango.lastSyncDate) {
                params['since'] = nango.lastSyncDate.toISOString();
            }
            for await (const page of nango.paginate({ endpoint: `/repos/${owner}/${repo}/issues`, params, paginate: { limit: 100 }, retries: 3 })) {
                const issues = page
                    .filter((issue: any) => !('pull_request' in issue))
                    .map((issue: any) => ({
                        id: String(issue.id),
                        owner: owner!,
                        repo: repo!,
                        issue_number: issue.number,
                        title: issue.title,
                        state: issue.state,
                        author: issue.user?.login ?? '',
                        author_id: issue.user?.id ?? 0,
                        body: issue.body ?? null,
                        labels: (issue.labels ?? []).map((label: any) => (typeof label === 'string' ? label : label.name)),
                        date_created: issue.created_at,
                        date_last_modified: issue.updated_at
                    }));
                if (issues.length > 0) {
                    await nango.batchSave(issues, 'GithubIssue');
                }
            }
        }
    }
});
export default sync;
