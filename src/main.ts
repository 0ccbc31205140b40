// Entry point used by bin/rdmactl.
import { run } from './cli.js';

process.exitCode = await run(process.argv.slice(2));
