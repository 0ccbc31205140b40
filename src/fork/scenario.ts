// The fork scenarios, one import for their users (the fork command, tests, the bench):
//  - matrix.ts      the vocabulary (backends, protections, writers, backings) and buildMatrix
//  - verdicts.ts    the verdict table (id, words, meaning), the row a verdict is drawn from, and verdictOf
//  - environment.ts probes of this machine shared by every row
//  - runner.ts      runScenario / runMatrix

export * from './matrix.js';
export * from './verdicts.js';
export * from './environment.js';
export * from './runner.js';
