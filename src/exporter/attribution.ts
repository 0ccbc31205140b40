// Where extra labels and per-cgroup series come from. Today nothing is attributed: the provider
// below adds no labels and no cgroup rows. Cgroup attribution (unit / container / pod labels, per-cgroup
// memory and rdma controller readings) plugs in here and nowhere else: metrics.ts declares its label
// names from `processLabelNames` and turns `cgroups()` rows into rdmactl_cgroup_* series.

/** One rdma.current / rdma.max entry of a cgroup: per device and resource (hca_handle, hca_object). */
export interface CgroupRdmaRow {
  device: string;
  resource: string;
  current: number;
  /** null = "max" (no limit). */
  max: number | null;
}

/** What a cgroup holds and may hold. */
export interface CgroupRow {
  /** Path below the cgroup root, e.g. /system.slice/foo.service. */
  cgroup: string;
  /** The same extra labels processes get (unit, container, pod, …); keys from processLabelNames. */
  labels: Record<string, string>;
  pinnedBytes: number;
  lockedBytes: number;
  memoryCurrentBytes: number | null;
  /** memory.max (v2) / memory.limit_in_bytes (v1); null = no limit. */
  memoryMaxBytes: number | null;
  rdma: CgroupRdmaRow[];
}

export interface Attribution {
  /**
   * Label names added to every per-process series, fixed for the exporter's lifetime (a metric keeps
   * one label set). The per-cgroup series carry them too.
   */
  readonly processLabelNames: readonly string[];
  /** Values for processLabelNames of one process (missing names are exported as ""). */
  processLabels(pid: number): Record<string, string>;
  /** Per-cgroup rows, read once per collection. */
  cgroups(): CgroupRow[];
}

/** No attribution: no extra labels, no cgroup rows. */
export function noAttribution(): Attribution {
  return {
    processLabelNames: [],
    processLabels: () => ({}),
    cgroups: () => [],
  };
}
