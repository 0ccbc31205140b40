// Public surface of the /proc layer: pure parsers (text in, records out), thin readers that return
// null for a vanished process and throw ProcUnreadableError for a refused one, and the scan.

export * from './procfs.js';
export * from './status.js';
export * from './limits.js';
export * from './smaps.js';
export * from './uringFdinfo.js';
export * from './meminfo.js';
export * from './stat.js';
export * from './comm.js';
export * from './cmdline.js';
export * from './environ.js';
export * from './pagemap.js';
export * from './vm.js';
export * from './accounts.js';
export * from './scan.js';
export * from './vmstat.js';
export * from './incremental.js';
export * from './loadavg.js';
export * from './cgroup.js';
