/**
 * Socket states with the kernel's numeric values (`enum smc_state`, spec 9.1), which smc_diag hands
 * to tools, and the strings smcss prints.
 */
export const SmcState = {
  ACTIVE: { value: 1, name: 'ACTIVE', smcss: 'ACTIVE' },
  INIT: { value: 2, name: 'INIT', smcss: 'INIT' },
  CLOSED: { value: 7, name: 'CLOSED', smcss: 'CLOSED' },
  LISTEN: { value: 10, name: 'LISTEN', smcss: 'LISTEN' },
  PEERCLOSEWAIT1: { value: 20, name: 'PEERCLOSEWAIT1', smcss: 'PEERCLOSEWAIT1' },
  PEERCLOSEWAIT2: { value: 21, name: 'PEERCLOSEWAIT2', smcss: 'PEERCLOSEWAIT2' },
  APPCLOSEWAIT1: { value: 22, name: 'APPCLOSEWAIT1', smcss: 'APPCLOSEWAIT1' },
  APPCLOSEWAIT2: { value: 23, name: 'APPCLOSEWAIT2', smcss: 'APPCLOSEWAIT2' },
  APPFINCLOSEWAIT: { value: 24, name: 'APPFINCLOSEWAIT', smcss: 'APPFINCLOSEWAIT1' },
  PEERFINCLOSEWAIT: { value: 25, name: 'PEERFINCLOSEWAIT', smcss: 'PEERFINCLOSEWAIT' },
  PEERABORTWAIT: { value: 26, name: 'PEERABORTWAIT', smcss: 'PEERABORTWAIT' },
  PROCESSABORT: { value: 27, name: 'PROCESSABORT', smcss: 'PROCESSABORT' },
} as const;
export type SmcStateName = keyof typeof SmcState;
export type SmcStateValue = (typeof SmcState)[SmcStateName]['value'];

export function smcStateName(value: number): SmcStateName | undefined {
  for (const [k, v] of Object.entries(SmcState)) if (v.value === value) return k as SmcStateName;
  return undefined;
}
