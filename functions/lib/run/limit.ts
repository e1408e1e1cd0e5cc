// Runs async work over items with at most `limit` in flight.

/**
 * Calls `work` for every item, at most `limit` at once, and resolves with
 * the results in item order. Rejects with the first failure once the
 * calls in flight have settled, so nothing keeps running behind it.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number,
  work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;

  const worker = async () => {
    while (!failure && next < items.length) {
      const index = next++;
      try {
        results[index] = await work(items[index]!, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };

  const workers = Math.max(1, Math.min(limit, items.length));
  await Promise.all(Array.from({ length: workers }, worker));
  if (failure) throw failure.error;
  return results;
}
