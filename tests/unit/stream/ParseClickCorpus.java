import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import lambdarec.flink.ParseClick;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * Runs the built PARSE_CLICK over records read from stdin, one per line:
 * {@code base64(payload) broker_ms earliest_ms max_future_ms max_bytes}; writes one JSON array a
 * line, the row PARSE_CLICK emitted ({@code [valid, event_id, session_id, user_id, item_id,
 * event_type, category, event_time]}). Used by {@code test_parse_click.py} (single-file launch).
 */
public class ParseClickCorpus {
  public static void main(String[] args) throws Exception {
    ParseClick parse = new ParseClick();
    parse.open(null);
    List<Row> rows = new ArrayList<>();
    parse.setCollector(
        new Collector<Row>() {
          public void collect(Row row) {
            rows.add(row);
          }

          public void close() {}
        });
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    StringBuilder out = new StringBuilder();
    String line;
    while ((line = in.readLine()) != null) {
      String[] parts = line.split(" ");
      rows.clear();
      parse.eval(
          Base64.getDecoder().decode(parts[0]),
          Instant.ofEpochMilli(Long.parseLong(parts[1])),
          Long.parseLong(parts[2]),
          Long.parseLong(parts[3]),
          Long.parseLong(parts[4]));
      if (rows.size() != 1) {
        throw new IllegalStateException("PARSE_CLICK emitted " + rows.size() + " rows for one record");
      }
      Row row = rows.get(0);
      out.append('[').append(row.getField(0));
      for (int i = 1; i < 8; i++) {
        Object value = row.getField(i);
        out.append(", ").append(value == null ? "null" : value instanceof Long ? value.toString() : quote((String) value));
      }
      out.append("]\n");
    }
    System.out.write(out.toString().getBytes(StandardCharsets.UTF_8));
    System.out.flush();
  }

  private static String quote(String text) {
    StringBuilder quoted = new StringBuilder("\"");
    for (char c : text.toCharArray()) {
      if (c == '"' || c == '\\') {
        quoted.append('\\').append(c);
      } else if (c < 0x20) {
        quoted.append(String.format("\\u%04x", (int) c));
      } else {
        quoted.append(c);
      }
    }
    return quoted.append('"').toString();
  }
}
