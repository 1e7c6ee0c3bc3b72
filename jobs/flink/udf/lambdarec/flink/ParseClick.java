package lambdarec.flink;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.TableFunction;
import org.apache.flink.types.Row;

/**
 * Parses one {@code clicks} record into the fields the speed layer uses, in a single pass.
 *
 * <p>SQL: {@code LATERAL TABLE(PARSE_CLICK(payload, kafka_ts, earliest_ms, max_future_ms,
 * max_bytes))} yields exactly one row per record, with {@code valid} false (and the event's fields
 * NULL) when the record is not an event. A table function runs once per record; a scalar function
 * returning a ROW would be called again for every field the query reads.
 *
 * <p>The rules are the event contract's ({@code lambdarec.events.contract}, whose constants are
 * generated into {@link EventContract}); its reference decoder ({@code decode_event} in {@code
 * jobs/flink/speed_layer.py}) writes the reason of a dead letter, and the shared corpus ({@code
 * tests/data/events}) holds this parser to the same verdicts on the real job. The bounds that are
 * settings (earliest event time, clock skew, size) come as arguments; the record's Kafka timestamp
 * is the clock of the in-future rule. Only the verdict is decided here, so rules are checked in
 * any order; one Jackson streaming pass replaces a JSON_VALUE call per field, each of which
 * parses the whole record.
 */
@FunctionHint(
    output =
        @DataTypeHint(
            "ROW<valid BOOLEAN, event_id STRING, session_id STRING, user_id STRING, item_id STRING,"
                + " event_type STRING, category STRING, event_time BIGINT, broker_ms BIGINT>"))
public class ParseClick extends TableFunction<Row> {

  /** A field's value of a type the contract does not allow (compared by identity). */
  private static final String WRONG = new String("<wrong type>");

  /** The fields the switch in {@link #parse} handles: a field added to the contract fails here. */
  private static final java.util.Set<String> HANDLED =
      java.util.Set.of(
          "event_id", "event_time", "session_id", "user_id", "item_id", "event_type", "price",
          "category", "brand");

  static {
    if (!HANDLED.equals(EventContract.FIELDS)) {
      throw new IllegalStateException(
          "ParseClick handles " + HANDLED + " but the event contract has " + EventContract.FIELDS);
    }
  }

  private transient JsonFactory json;
  private transient CharsetDecoder utf8;

  @Override
  public void open(FunctionContext context) {
    json = new JsonFactory();
    utf8 =
        StandardCharsets.UTF_8
            .newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT);
  }

  public void eval(
      byte[] payload,
      @DataTypeHint("TIMESTAMP_LTZ(3)") Instant brokerTime,
      Long earliestMs,
      Long maxFutureMs,
      Long maxBytes) {
    Long brokerMs = brokerTime == null ? null : brokerTime.toEpochMilli();
    long earliest = earliestMs == null ? EventContract.DEFAULT_EARLIEST_MS : earliestMs;
    long maxFuture = maxFutureMs == null ? EventContract.DEFAULT_MAX_FUTURE_MS : maxFutureMs;
    long limit = maxBytes == null ? EventContract.DEFAULT_MAX_BYTES : maxBytes;
    Row row = parse(payload, brokerMs, earliest, maxFuture, limit);
    collect(row == null ? Row.of(false, null, null, null, null, null, null, null, brokerMs) : row);
  }

  private Row parse(byte[] payload, Long brokerMs, long earliest, long maxFuture, long maxBytes) {
    if (payload == null || payload.length > maxBytes) {
      return null; // a tombstone is not JSON; oversized
    }
    if (json == null) {
      open(null);
    }
    String text;
    try {
      text = utf8.decode(ByteBuffer.wrap(payload)).toString();
    } catch (CharacterCodingException e) {
      return null;
    }
    if (text.indexOf('\uFFFD') >= 0) {
      return null; // the mark of an earlier failed decoding
    }
    String eventId = null, sessionId = null, userId = null, itemId = null, eventType = null;
    String category = null, brand = null;
    Long eventTime = null;
    try (JsonParser parser = json.createParser(text)) {
      if (parser.nextToken() != JsonToken.START_OBJECT) {
        return null;
      }
      JsonToken token;
      while ((token = parser.nextToken()) == JsonToken.FIELD_NAME) {
        String field = parser.currentName();
        JsonToken value = parser.nextToken();
        switch (field) {
          case "event_id":
            eventId = idText(parser, value);
            break;
          case "session_id":
            sessionId = idText(parser, value);
            break;
          case "item_id":
            itemId = idText(parser, value);
            break;
          case "user_id":
            userId = idText(parser, value);
            break;
          case "event_type":
            if (value == JsonToken.VALUE_NULL) {
              eventType = null;
            } else {
              eventType = value == JsonToken.VALUE_STRING ? parser.getText() : WRONG;
            }
            break;
          case "category":
            category = optionalText(parser, value);
            break;
          case "brand":
            brand = optionalText(parser, value);
            break;
          case "event_time":
            if (value == JsonToken.VALUE_NULL) {
              eventTime = null;
            } else if (!isLong(parser, value)) {
              return null;
            } else {
              eventTime = parser.getLongValue();
            }
            break;
          case "price":
            if (value != JsonToken.VALUE_NULL && !priceIsValid(parser, value)) {
              return null;
            }
            break;
          default:
            return null; // not a field of the event (EventContract.FIELDS)
        }
        if (eventId == WRONG || sessionId == WRONG || itemId == WRONG || userId == WRONG
            || eventType == WRONG || category == WRONG || brand == WRONG) {
          return null;
        }
      }
      if (token != JsonToken.END_OBJECT || parser.nextToken() != null) {
        return null; // not one complete object, or something after it
      }
    } catch (Exception e) {
      return null; // not JSON
    }
    if (!isId(eventId) || !isId(sessionId) || !isId(itemId)) {
      return null;
    }
    if (userId != null && length(userId) > EventContract.MAX_ID_LENGTH) {
      return null;
    }
    if (eventType == null || !EventContract.EVENT_TYPES.contains(eventType)) {
      return null;
    }
    if (eventTime == null || eventTime < earliest) {
      return null;
    }
    if (brokerMs != null && eventTime > brokerMs + maxFuture) {
      return null;
    }
    return Row.of(true, eventId, sessionId, userId, itemId, eventType, category, eventTime, brokerMs);
  }

  /** An id: a string or an integer as text, stripped; NULL when absent or blank; WRONG otherwise. */
  private static String idText(JsonParser parser, JsonToken value) throws Exception {
    if (value == JsonToken.VALUE_NULL) {
      return null;
    }
    if (value == JsonToken.VALUE_STRING || (value == JsonToken.VALUE_NUMBER_INT)) {
      String text = parser.getText().strip();
      return text.isEmpty() ? null : text;
    }
    return WRONG;
  }

  /** An optional text: a string, stripped, of at most MAX_TEXT_LENGTH; NULL when blank; else WRONG. */
  private static String optionalText(JsonParser parser, JsonToken value) throws Exception {
    if (value == JsonToken.VALUE_NULL) {
      return null;
    }
    if (value != JsonToken.VALUE_STRING) {
      return WRONG;
    }
    String text = parser.getText().strip();
    if (length(text) > EventContract.MAX_TEXT_LENGTH) {
      return WRONG;
    }
    return text.isEmpty() ? null : text;
  }

  /** An integer that fits in a signed 64-bit long. */
  private static boolean isLong(JsonParser parser, JsonToken value) throws Exception {
    if (value != JsonToken.VALUE_NUMBER_INT) {
      return false;
    }
    JsonParser.NumberType type = parser.getNumberType();
    return type == JsonParser.NumberType.INT || type == JsonParser.NumberType.LONG;
  }

  /** A number, not negative, finite. */
  private static boolean priceIsValid(JsonParser parser, JsonToken value) throws Exception {
    if (value != JsonToken.VALUE_NUMBER_INT && value != JsonToken.VALUE_NUMBER_FLOAT) {
      return false;
    }
    double price = parser.getDoubleValue();
    return price >= 0 && price < Double.POSITIVE_INFINITY;
  }

  private static boolean isId(String text) {
    return text != null && length(text) <= EventContract.MAX_ID_LENGTH;
  }

  /** Characters as Python and Spark count them (code points, not UTF-16 units). */
  private static int length(String text) {
    return text.codePointCount(0, text.length());
  }
}
