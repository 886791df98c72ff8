/**
 * softroce: a userspace RC transport over UDP in the RoCEv2 wire format (see README.md).
 */
export { SoftRoceProvider, type SoftRoceProviderOptions, type SoftRoceDeviceOptions } from './provider.js';
export { SoftRoceContext } from './context.js';
export { SoftRoceDevice, defaultDeviceList as defaultSoftRoceDevices, type SoftRoceTestHooks, type SoftRoceTransportOptions } from './device.js';
export type { SoftRoceStats } from './stats.js';
export {
  RealClock as SoftRoceRealClock, ManualClock as SoftRoceManualClock, type Clock as SoftRoceClock, type TimerRef as SoftRoceTimerRef,
} from './clock.js';
export {
  MemNetwork as SoftRoceMemNetwork, udpLinkFactory as softRoceUdpLinkFactory,
  type DatagramLink as SoftRoceDatagramLink, type DatagramReceiver as SoftRoceDatagramReceiver,
  type LinkFactory as SoftRoceLinkFactory, type LinkConfig as SoftRoceLinkConfig,
} from './link.js';
export { IcrcChecker as SoftRoceIcrcChecker, fillIcrcUdp4 as softRoceFillIcrcUdp4 } from './icrc.js';
