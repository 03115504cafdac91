import type { NangoSync, Ticket } from '../../models';
import { toTicket } from '../mappers/to-ticket.js';

// A full sync written the way Nango's templates are: every page is saved as it arrives, a checkpoint lets
// an interrupted run resume where it stopped, and tickets that disappeared upstream are marked deleted once
// a run has seen all the others.
export default async function fetchData(nango: NangoSync): Promise<void> {
    const checkpoint = await nango.getCheckpoint();
    if (!checkpoint) {
        await nango.trackDeletesStart('Ticket');
    }
    let saved = 0;
    const resume = checkpoint ? { cursor: String(checkpoint['cursor']) } : {};
    for await (const page of nango.paginate<RawTicket>({
        endpoint: '/tickets',
        params: resume,
        paginate: { limit: 100 },
        retries: 3
    })) {
        const tickets: Ticket[] = page.map(toTicket);
        await nango.batchSave(tickets, 'Ticket');
        saved += tickets.length;
        await nango.saveCheckpoint({ cursor: String(Number(resume.cursor ?? 0) + saved) });
    }
    await nango.clearCheckpoint();
    const { deletedKeys } = await nango.trackDeletesEnd('Ticket');
    await nango.log(`Fetched ${saved} tickets, ${deletedKeys.length} gone since the last full run`);
}

export interface RawTicket {
    id: number;
    subject: string;
    status: 'open' | 'pending' | 'closed';
    priority: number;
    requester: { name: string; email: string };
    tags: string[];
    created_at: string;
}
