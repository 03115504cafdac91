import type { NangoSync, GithubIssue } from '../../models';
import { toIssue } from '../mappers/to-issue.js';

interface Metadata {
    repositories: string[]; // "owner/repo"
}

export default async function fetchData(nango: NangoSync): Promise<void> {
    const { repositories = [] } = (await nango.getMetadata<Metadata>()) || {};
    for (const fullName of repositories) {
        const [owner, repo] = fullName.split('/');
        const params: Record<string, string> = { state: 'all', sort: 'updated', direction: 'asc' };
        if (nango.lastSyncDate) {
            params['since'] = nango.lastSyncDate.toISOString();
        }
        for await (const page of nango.paginate({ endpoint: `/repos/${owner}/${repo}/issues`, params, paginate: { limit: 100 }, retries: 3 })) {
            const issues = page.filter((issue: any) => !('pull_request' in issue)).map((issue: any) => toIssue(issue, owner!, repo!));
            if (issues.length > 0) {
                await nango.batchSave<GithubIssue>(issues, 'GithubIssue');
            }
        }
    }
}
