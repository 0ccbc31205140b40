// Verbs backend: object model (pyverbs style), the engine's registration, and device listing.

export { Context, Device, DeviceList, MemoryRegion, ProtectionDomain, getDeviceList } from './objects.js';
export type { OdpCaps, PortInfo } from './objects.js';
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
export { ACCESS_FLAGS, formatAccessFlags, parseAccessFlags } from '../../ffi/verbs.js';
