// Imported first by every program rdmactl runs (bin/rdmactl does the same inline, before anything
// else): on SIGUSR1 Node starts its inspector on 127.0.0.1:9229, and whoever connects to it runs code
// in the process — as root, for any local user. Node 20 has no --disable-sigusr1; a SIGUSR1 listener
// replaces the handler that starts the inspector. The signal is then ignored.

export function ignoreDebugSignal(): void {
  // nothing: SIGUSR1 has no meaning in rdmactl
}

process.on('SIGUSR1', ignoreDebugSignal);
