package lambdarec.flink;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * The top-level integer {@code event_time} of a {@code clicks} record, or NULL.
 *
 * <p>SQL: {@code EVENT_TIME_OF(payload BYTES)}: the source's event-time column, from which
 * watermarks are generated. It stops reading at the field, so it costs a fraction of a full
 * parse; whether the record is an event at all is decided by {@code PARSE_CLICK}.
 */
public class EventTimeOf extends ScalarFunction {

  private transient JsonFactory json;

  @Override
  public void open(FunctionContext context) {
    json = new JsonFactory();
  }

  public Long eval(byte[] payload) {
    if (payload == null) {
      return null;
    }
    if (json == null) {
      json = new JsonFactory();
    }
    try (JsonParser parser = json.createParser(payload)) {
      if (parser.nextToken() != JsonToken.START_OBJECT) {
        return null;
      }
      while (parser.nextToken() == JsonToken.FIELD_NAME) {
        String field = parser.currentName();
        JsonToken value = parser.nextToken();
        if ("event_time".equals(field)) {
          JsonParser.NumberType type =
              value == JsonToken.VALUE_NUMBER_INT ? parser.getNumberType() : null;
          boolean fits = type == JsonParser.NumberType.INT || type == JsonParser.NumberType.LONG;
          return fits ? parser.getLongValue() : null;
        }
        parser.skipChildren();
      }
      return null;
    } catch (Exception e) {
      return null;
    }
  }
}
