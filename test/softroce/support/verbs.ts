/**
 * The verbs package for the softroce tests, in one place: the interface from @smc-r/verbs (its
 * built dist) and the two software providers.
 */
export * from '@smc-r/verbs';
