// Registrations that outlive the command: the held-records store and dereg (what `top` loads).
// Starting a holder (starter.ts), the holder process (holder.ts) and what they exchange (protocol.ts)
// are imported by `reg` only; they pull in the registration engine, which `top` does not need.
export * from './store.js';
export * from './dereg.js';
