// sysfs (and /proc/driver) files that say what the kernel has: RDMA devices, their NUMA node,
// loaded modules and drivers, the transparent huge page size. Each reader answers "absent" (empty,
// null, false) for a file that is missing or unreadable: these describe the machine, and a kernel
// without the feature simply has no file.

import { existsSync, readFileSync, readdirSync } from 'node:fs';

/** The RDMA devices' class directory: one entry per device the kernel knows (mlx5_0, rxe0, …). */
export const INFINIBAND_CLASS = '/sys/class/infiniband';

/** Whether the kernel has RDMA support loaded (the class directory exists, with or without devices). */
export function hasRdmaClass(): boolean {
  return existsSync(INFINIBAND_CLASS);
}

/** The RDMA devices the kernel knows, by name in ascending order (one readdir); [] when there is none. */
export function readRdmaDeviceNames(): string[] {
  try {
    return readdirSync(INFINIBAND_CLASS).sort();
  } catch {
    return [];
  }
}

/** Where an RDMA device's NUMA node is stated (its PCI device's numa_node). */
export function rdmaDeviceNumaNodePath(device: string): string {
  return `${INFINIBAND_CLASS}/${device}/device/numa_node`;
}

/** The device's NUMA node (-1: none stated, NaN: not a number); null when the file is missing (a software device). */
export function readRdmaDeviceNumaNode(device: string): number | null {
  try {
    return Number.parseInt(readFileSync(rdmaDeviceNumaNodePath(device), 'utf8').trim(), 10);
  } catch {
    return null;
  }
}

/** Whether an NVIDIA GPU driver is loaded (/proc/driver/nvidia). */
export function hasNvidiaDriver(): boolean {
  return existsSync('/proc/driver/nvidia');
}

/** Whether kernel module `name` is loaded (/sys/module/NAME; built-in modules with parameters show too). */
export function isModuleLoaded(name: string): boolean {
  return existsSync(`/sys/module/${name}`);
}

/** The transparent huge page (PMD) size the kernel states (Linux ≥ 4.14); null without THP or on an older kernel. */
export function readThpPmdBytes(): number | null {
  try {
    const bytes = Number.parseInt(readFileSync('/sys/kernel/mm/transparent_hugepage/hpage_pmd_size', 'ascii'), 10);
    return bytes > 0 ? bytes : null;
  } catch {
    return null;
  }
}
