// The scripts of this project, in Nango's zero-YAML format: each import is one sync, action or on-event
// script, at <integration>/<syncs|actions|on-events>/<name>.ts.
import './demo/syncs/tickets.js';
import './demo/actions/create-ticket.js';
import './github/syncs/issues.js';
