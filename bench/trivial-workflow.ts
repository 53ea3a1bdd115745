// The baseline for throughput: a workflow that does nothing, on the same Temporal server.
export async function TrivialWorkflow(): Promise<number> {
  return 1;
}
