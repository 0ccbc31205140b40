// Entry point used by bin/rdmactl.
// First: no inspector on SIGUSR1 when started without bin/rdmactl (see debugSignal.ts).
import './lib/debugSignal.js';
import { run } from './cli.js';

process.exitCode = await run(process.argv.slice(2));
