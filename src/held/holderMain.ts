// The detached holder's program: `node holderMain.js --holder-token TOKEN`, started by
// `rdmactl reg --detach` (see protocol.ts for the lines on its stdin and stdout). Runs no rdmactl command.

// First: no inspector on SIGUSR1 from the first line on (see debugSignal.ts).
import '../lib/debugSignal.js';
import { runHolder } from './holder.js';

void runHolder(process.argv.slice(2)).then((code) => { process.exitCode = code; });
