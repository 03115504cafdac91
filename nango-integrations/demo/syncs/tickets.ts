import type { NangoSync, Ticket } from '../../models';
import { toTicket } from '../mappers/to-ticket.js';

export default async function fetchData(nango: NangoSync): Promise<void> {
    let saved = 0;
    for await (const page of nango.paginate<RawTicket>({ endpoint: '/tickets', paginate: { limit: 100 }, retries: 3 })) {
        const tickets: Ticket[] = page.map(toTicket);
        await nango.batchSave(tickets, 'Ticket');
        saved += tickets.length;
    }
    await nango.log(`Fetched ${saved} tickets`);
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
