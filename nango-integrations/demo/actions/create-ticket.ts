import type { NangoAction, CreateTicketInput, Ticket } from '../../models';
import type { RawTicket } from '../syncs/tickets.js';
import { toTicket } from '../mappers/to-ticket.js';

// Opens a ticket in the help desk and returns it as the Ticket model.
export default async function runAction(nango: NangoAction, input: CreateTicketInput): Promise<Ticket> {
    if (!input?.subject) {
        throw new nango.ActionError({ message: 'subject is required', field: 'subject' });
    }
    const response = await nango.post<RawTicket>({
        endpoint: '/tickets',
        data: {
            subject: input.subject,
            requester: { name: input.requester_name, email: input.requester_email }
        },
        retries: 3
    });
    return toTicket(response.data);
}
