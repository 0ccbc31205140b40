// Registrations that outlive the command: the held-records store, detached holders, and dereg.
export * from './store.js';
export * from './holder.js';
export * from './dereg.js';
