// Registrations that outlive the command: the held-records store and dereg (what `top` loads).
// The holder itself (holder.ts: starting one, and the holder program's side) is imported by `reg`
// only; it pulls in the registration engine, which `top` does not need.
export * from './store.js';
export * from './dereg.js';
