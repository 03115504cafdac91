import { createSync } from 'nango';
import { z } from 'zod';

import { toTicket } from '../mappers/to-ticket.js';
import { Ticket } from '../models.js';
import type { RawTicket } from '../models.js';

// A full sync: every page is saved as it arrives, a checkpoint lets an interrupted run resume where it
// stopped, and tickets that disappeared upstream are marked deleted once a run has seen all the others.
const sync = createSync({
    description: 'Help-desk tickets from the bundled mock API, with their requester.',
    version: '1.0.0',
    frequency: 'every 5 minutes',
    autoStart: true,
    syncType: 'full',
    endpoints: [{ method: 'GET', path: '/tickets' }],
    checkpoint: z.object({ cursor: z.string() }),
    models: { Ticket },
    exec: async (nango) => {
        const checkpoint = await nango.getCheckpoint();
        if (!checkpoint) {
            await nango.trackDeletesStart('Ticket');
        }
        let saved = 0;
        const resume = checkpoint ? { cursor: String(checkpoint['cursor']) } : {};
        for await (const page of nango.paginate<RawTicket>({ endpoint: '/tickets', params: resume, paginate: { limit: 100 }, retries: 3 })) {
            const tickets = page.map(toTicket);
            await nango.batchSave(tickets, 'Ticket');
            saved += tickets.length;
            await nango.saveCheckpoint({ cursor: String(Number(resume.cursor ?? 0) + saved) });
        }
        await nango.clearCheckpoint();
        const { deletedKeys } = await nango.trackDeletesEnd('Ticket');
        await nango.log(`Fetched ${saved} tickets, ${deletedKeys.length} gone since the last full run`);
    }
});
export default sync;
