import type { RawTicket, Ticket } from '../models.js';

export function toTicket(raw: RawTicket): Ticket {
    return {
        id: String(raw.id),
        subject: raw.subject,
        status: raw.status,
        priority: raw.priority,
        requester_name: raw.requester.name,
        requester_email: raw.requester.email,
        tags: raw.tags,
        created_at: raw.created_at
    };
}
