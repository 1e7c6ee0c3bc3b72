package lambdarec.flink;

import java.util.Arrays;
import org.apache.flink.table.functions.AggregateFunction;

/**
 * The latest items of a group (a session, a user) in event-time order.
 *
 * <p>SQL: {@code RECENT_ITEMS(event_time_ms, event_id, item_id, limit)} returns
 * {@code ARRAY<STRING>}, oldest first. Entries are ordered by (event time, event id), so the
 * result does not depend on the order in which events arrive, and an event folded in twice
 * (same time and id) is kept once: the same rule as {@code lambdarec.features.session}, so the
 * stream equals a batch recount. Only the latest {@code limit} entries are kept, which bounds
 * the state of a group whatever its size.
 */
public class RecentItems extends AggregateFunction<String[], RecentItems.Acc> {

  /** The kept entries, sorted by (time, id); arrays keep Flink's type extraction simple. */
  public static class Acc {
    public long[] times = new long[0];
    public String[] ids = new String[0];
    public String[] items = new String[0];
  }

  @Override
  public Acc createAccumulator() {
    return new Acc();
  }

  @Override
  public String[] getValue(Acc acc) {
    return acc.items.clone();
  }

  /** Fold one event in; nulls (anonymous rows, filtered upstream) are ignored. */
  public void accumulate(Acc acc, Long time, String id, String item, Integer limit) {
    if (time == null || id == null || item == null || limit == null || limit <= 0) {
      return;
    }
    insert(acc, time, id, item, limit);
  }

  /** Combine partial results (two-phase aggregation). */
  public void merge(Acc acc, Iterable<Acc> others) {
    for (Acc other : others) {
      for (int i = 0; i < other.times.length; i++) {
        insert(acc, other.times[i], other.ids[i], other.items[i], Integer.MAX_VALUE);
      }
    }
  }

  private static void insert(Acc acc, long time, String id, String item, int limit) {
    int n = acc.times.length;
    int at = n;
    // Entries are few (the limit is ~20): a backwards scan beats a binary search here.
    while (at > 0 && compare(acc.times[at - 1], acc.ids[at - 1], time, id) > 0) {
      at--;
    }
    if (at > 0 && acc.times[at - 1] == time && acc.ids[at - 1].equals(id)) {
      return; // the same event again
    }
    if (n >= limit && at == 0) {
      return; // older than everything kept, and the list is full
    }
    long[] times = new long[n + 1];
    String[] ids = new String[n + 1];
    String[] items = new String[n + 1];
    System.arraycopy(acc.times, 0, times, 0, at);
    System.arraycopy(acc.ids, 0, ids, 0, at);
    System.arraycopy(acc.items, 0, items, 0, at);
    times[at] = time;
    ids[at] = id;
    items[at] = item;
    System.arraycopy(acc.times, at, times, at + 1, n - at);
    System.arraycopy(acc.ids, at, ids, at + 1, n - at);
    System.arraycopy(acc.items, at, items, at + 1, n - at);
    int drop = Math.max(0, times.length - limit);
    acc.times = Arrays.copyOfRange(times, drop, times.length);
    acc.ids = Arrays.copyOfRange(ids, drop, ids.length);
    acc.items = Arrays.copyOfRange(items, drop, items.length);
  }

  private static int compare(long t1, String id1, long t2, String id2) {
    return t1 != t2 ? Long.compare(t1, t2) : id1.compareTo(id2);
  }
}
