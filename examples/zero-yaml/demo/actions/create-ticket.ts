import { createAction } from 'nango';

import { toTicket } from '../mappers/to-ticket.js';
import { CreateTicketInput, Ticket } from '../models.js';
import type { RawTicket } from '../models.js';

// Opens a ticket in the help desk and returns it; the input is checked by its zod schema first.
const action = createAction({
    description: 'Opens a ticket for a requester and returns it.',
    version: '1.0.0',
    endpoint: { method: 'POST', path: '/tickets' },
    input: CreateTicketInput,
    output: Ticket,
    exec: async (nango, input) => {
        const parsed = CreateTicketInput.safeParse(input);
        if (!parsed.success) {
            throw new nango.ActionError({ message: 'invalid input', issues: parsed.error.issues });
        }
        const response = await nango.post<RawTicket>({
            endpoint: '/tickets',
            data: { subject: parsed.data.subject, requester: { name: parsed.data.requester_name, email: parsed.data.requester_email } },
            retries: 3
        });
        return toTicket(response.data);
    }
});
export default action;
