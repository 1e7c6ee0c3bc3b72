package lambdarec.flink;

import java.util.Set;

/**
 * The event contract's constants, generated from {@code lambdarec.events.contract} (do not edit:
 * run {@code python -m lambdarec.events.contract --java} and commit the result).
 */
final class EventContract {

  /** Every field of an event; any other key makes a record invalid. */
  static final Set<String> FIELDS = Set.of("event_id", "event_time", "session_id", "user_id", "item_id", "event_type", "price", "category", "brand");

  /** Required ids: a string or an integer, non-blank after stripping. */
  static final Set<String> REQUIRED_IDS = Set.of("event_id", "session_id", "item_id");

  /** The optional id (blank means absent). */
  static final String OPTIONAL_ID = "user_id";

  /** Optional texts: strings only (blank means absent). */
  static final Set<String> OPTIONAL_TEXT = Set.of("category", "brand");

  static final Set<String> EVENT_TYPES = Set.of("view", "cart", "purchase");
  static final int MAX_ID_LENGTH = 128;
  static final int MAX_TEXT_LENGTH = 256;

  /** Defaults of the bounds that are settings (the job passes the settings' values). */
  static final long DEFAULT_EARLIEST_MS = 946684800000L;

  static final long DEFAULT_MAX_FUTURE_MS = 86400000L;
  static final int DEFAULT_MAX_BYTES = 16384;

  private EventContract() {}
}
