export * from './pcap.js';
export * from './packet.js';
