import { z } from 'zod';

// A help-desk ticket as the sync saves it; its typed view is nango_records.ticket.
export const Ticket = z.object({
    id: z.string(),
    subject: z.string(),
    status: z.enum(['open', 'pending', 'closed']),
    priority: z.number(),
    requester_name: z.string(),
    requester_email: z.string(),
    tags: z.array(z.string()),
    created_at: z.string().datetime()
});
export type Ticket = z.infer<typeof Ticket>;

export const CreateTicketInput = z.object({
    subject: z.string().min(1),
    requester_name: z.string(),
    requester_email: z.string().email()
});

// A ticket as the help desk's API returns it.
export interface RawTicket {
    id: number;
    subject: string;
    status: 'open' | 'pending' | 'closed';
    priority: number;
    requester: { name: string; email: string };
    tags: string[];
    created_at: string;
}
