// Every workflow the worker runs; the bundler starts from this file.
export { GenerationWorkflow } from './generation';
export { LedgerReconcilerWorkflow } from './reconciler';
export { WebhookDeliveryWorkflow } from './webhook-delivery';
