// The fork watchdog's program (see watchdog.ts): `node watchdogMain.js PARENT_PID PARENT_START MARKER INODE`.
// Runs no rdmactl command; reads /proc and signals only processes holding the parent's marker.

// First: no inspector on SIGUSR1 from the first line on (see debugSignal.ts).
import '../lib/debugSignal.js';
import { writeSync } from 'node:fs';
import { PR_SET_PDEATHSIG, SIGKILL, SIGTERM, pidfdOpen, pidfdSendSignal, prctl } from '../ffi/libc.js';
import { closeSync } from 'node:fs';
import { findMarkerHolders, holdsMarker, type Marker } from './watchdog.js';

const [parentText, startText, markerName, inodeText] = process.argv.slice(2);
const parentPid = Number(parentText);
const parentStartTicks = Number(startText);
const marker: Marker = { name: markerName ?? '', inode: Number(inodeText) };
if (!Number.isSafeInteger(parentPid) || !Number.isSafeInteger(parentStartTicks) || marker.name === '' || !Number.isSafeInteger(marker.inode)) {
  process.stderr.write('usage: watchdogMain.js PARENT_PID PARENT_START_TICKS MARKER_NAME MARKER_INODE\n');
  process.exit(2);
}

/** Kill every process that holds the marker: the dead parent's paused children. */
function sweep(): void {
  for (const pid of findMarkerHolders(marker, parentStartTicks, process.pid)) {
    let pidfd: number;
    try {
      pidfd = pidfdOpen(pid);
    } catch {
      continue; // already gone
    }
    try {
      // Checked again through a handle that cannot be reused: this is the process that holds the marker.
      if (holdsMarker(pid, marker)) pidfdSendSignal(pidfd, SIGKILL);
    } catch {
      // it exited in between
    } finally {
      closeSync(pidfd);
    }
  }
}

let sweeping = false;
function parentGone(): boolean {
  return process.ppid !== parentPid;
}
function checkParent(): void {
  if (sweeping || !parentGone()) return;
  sweeping = true;
  sweep();
  // A second look shortly after, for a child whose clone was completing as its parent died.
  setTimeout(() => {
    sweep();
    process.exit(0);
  }, 100);
}

// SIGTERM is our parent-death signal; from anyone else while the parent lives it is ignored, as are
// SIGINT and SIGHUP: the watchdog ends only with its parent.
process.on('SIGTERM', checkParent);
process.on('SIGINT', () => undefined);
process.on('SIGHUP', () => undefined);
prctl(PR_SET_PDEATHSIG, SIGTERM);
// Keeps the event loop alive, and catches a lost death signal.
setInterval(checkParent, 1000);
try {
  writeSync(1, 'armed\n');
} catch {
  // the parent stopped listening: it is dying; the check below (or the death signal) handles it
}
checkParent();
