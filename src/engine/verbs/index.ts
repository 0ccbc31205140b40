// Verbs backend: object model (pyverbs style), the engine's registration, and device listing.

export { CompletionQueue, DeviceContext, Device, DeviceList, MemoryRegion, ProtectionDomain, QueuePair, DeviceOpenError, classifyOpenFailure, getDeviceList } from './objects.js';
export type { DeviceOpenFailure, OdpCaps, PortInfo, QueuePairOptions, RemoteEndpoint } from './objects.js';
export { LoopbackConnection, WorkCompletionError, chooseGid, formatGid, isIpv4Mapped } from './loopback.js';
export type { GidChoice, LoopbackOptions } from './loopback.js';
export {
  VerbsRegistration,
  ensureForkInit,
  isNoDeviceErrno,
  noDeviceError,
  openDeviceListOrExplain,
  openVerbsRegistration,
} from './registration.js';
export type { VerbsRegistrationOptions } from './registration.js';
export { forkStatus, listDeviceNames, listDevices } from './devices.js';
export type { DeviceInfo } from './devices.js';
export { ACCESS_FLAGS, formatAccessFlags, parseAccessFlags } from './access.js';
