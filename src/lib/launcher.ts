// The launcher of this installation (bin/rdmactl), for the few places that run rdmactl as a child:
// doctor --try's registration and the exit scenario's holder.

import { fileURLToPath } from 'node:url';

export const RDMACTL_BIN = fileURLToPath(new URL('../../bin/rdmactl', import.meta.url));
