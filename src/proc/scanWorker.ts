// Worker thread body for IncrementalScanner.prefetch(): one full scan, posted back to the parent.
// Runs while the parent is busy with something else (top loading ink), on another core.

import { parentPort } from 'node:worker_threads';
import { listPids } from './procfs.js';
import { scanProcesses } from './scan.js';

const pids = listPids();
parentPort!.postMessage({ pids, result: scanProcesses({ onlyHolding: true, subset: pids }) });
