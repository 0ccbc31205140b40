// libibverbs bindings, split the way pyverbs separates declarations from objects:
//  - enums.ts   constants and enums of <infiniband/verbs.h> (no koffi: cheap to import)
//  - structs.ts struct layouts, the decoded shapes, and their decoders
//  - calls.ts   the library loader and the raw calls
// Object lifetimes live in src/engine/verbs/objects.ts; command-line policy (access-flag names) in
// src/engine/verbs/access.ts.

export * from './enums.js';
export * from './structs.js';
export * from './calls.js';
