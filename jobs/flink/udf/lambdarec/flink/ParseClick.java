package lambdarec.flink;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Set;
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
 * <p>SQL: {@code LATERAL TABLE(PARSE_CLICK(payload))} yields exactly one row per record, with
 * {@code valid} false (and the fields NULL) when the record is not an event. A table function
 * runs once per record; a scalar function returning a ROW would be called again for every field
 * the query reads. The rules are those of {@code decode_event} in {@code jobs/flink/speed_layer.py} (the
 * reference, which also writes the reason of a dead letter): valid UTF-8 without U+FFFD; one
 * JSON object and nothing after it; {@code event_id}, {@code session_id}, {@code item_id},
 * {@code event_type} non-empty strings (integers are turned into text); {@code event_type} one
 * of view / cart / purchase; {@code event_time} a positive integer (epoch ms). One Jackson
 * streaming pass replaces a JSON_VALUE call per field, each of which parses the whole record.
 */
@FunctionHint(
    output =
        @DataTypeHint(
            "ROW<valid BOOLEAN, event_id STRING, session_id STRING, user_id STRING, item_id STRING,"
                + " event_type STRING, category STRING, event_time BIGINT>"))
public class ParseClick extends TableFunction<Row> {

  private static final Set<String> EVENT_TYPES = Set.of("view", "cart", "purchase");
  private static final Row INVALID = Row.of(false, null, null, null, null, null, null, null);

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

  public void eval(byte[] payload) {
    Row row = parse(payload);
    collect(row == null ? INVALID : row);
  }

  private Row parse(byte[] payload) {
    if (payload == null) {
      return null;
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
      return null;
    }
    String eventId = null, sessionId = null, userId = null, itemId = null, eventType = null;
    String category = null;
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
          case "event_type":
            eventType = idText(parser, value);
            break;
          case "user_id":
            userId = anyText(parser, value);
            break;
          case "category":
            category = anyText(parser, value);
            break;
          case "event_time":
            eventTime = value == JsonToken.VALUE_NUMBER_INT ? epochMillis(parser) : null;
            break;
          default:
            parser.skipChildren();
        }
      }
      if (token != JsonToken.END_OBJECT || parser.nextToken() != null) {
        return null; // not one complete object, or something after it
      }
    } catch (Exception e) {
      return null; // not JSON
    }
    if (isEmpty(eventId) || isEmpty(sessionId) || isEmpty(itemId) || isEmpty(eventType)) {
      return null;
    }
    if (!EVENT_TYPES.contains(eventType) || eventTime == null || eventTime <= 0) {
      return null;
    }
    return Row.of(true, eventId, sessionId, userId, itemId, eventType, category, eventTime);
  }

  /** A required id: a string, or an integer turned into text; anything else is unusable. */
  private static String idText(JsonParser parser, JsonToken value) throws Exception {
    if (value == JsonToken.VALUE_STRING) {
      return parser.getText();
    }
    if (value == JsonToken.VALUE_NUMBER_INT) {
      return parser.getText();
    }
    parser.skipChildren();
    return null;
  }

  /** An optional text: strings and numbers as text; null, booleans and containers as absent. */
  private static String anyText(JsonParser parser, JsonToken value) throws Exception {
    if (value == JsonToken.VALUE_STRING
        || value == JsonToken.VALUE_NUMBER_INT
        || value == JsonToken.VALUE_NUMBER_FLOAT) {
      String text = parser.getText();
      return text.isEmpty() ? null : text;
    }
    parser.skipChildren();
    return null;
  }

  /** An integer that fits in a long (bigger ones are not epoch milliseconds). */
  private static Long epochMillis(JsonParser parser) throws Exception {
    JsonParser.NumberType type = parser.getNumberType();
    boolean fits = type == JsonParser.NumberType.INT || type == JsonParser.NumberType.LONG;
    return fits ? parser.getLongValue() : null;
  }

  private static boolean isEmpty(String text) {
    return text == null || text.isEmpty();
  }
}
