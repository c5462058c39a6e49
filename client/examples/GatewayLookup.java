// A lookup through the member gateway (`registry-client serve`) from Java 11+, with nothing
// but the JDK. Run: java GatewayLookup.java  (single-file source launch)
// Environment: REGISTRY_GATEWAY_URL (default http://127.0.0.1:8088) and, when the gateway is
// bound off loopback, REGISTRY_GATEWAY_SECRET. The raw phone number goes to the gateway inside
// your network only; the gateway sends the registry nothing but blinded elements and tokens.
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

public class GatewayLookup {
    public static void main(String[] args) throws Exception {
        String base = System.getenv().getOrDefault("REGISTRY_GATEWAY_URL", "http://127.0.0.1:8088");
        String secret = System.getenv("REGISTRY_GATEWAY_SECRET");
        // Build the body with your JSON library (Jackson, Gson...); a literal keeps this short.
        String body = """
            {"purpose": "loan_application",
             "identifiers": [{"kind": "phone", "value": "138 1234 5678"},
                             {"kind": "cn_resident_id", "value": "11010519491231002X"}]}""";

        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(base + "/v1/lookups"))
            .timeout(Duration.ofSeconds(30))
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(body));
        if (secret != null) {
            request.header("Authorization", "Bearer " + secret);
        }
        HttpResponse<String> response = http.send(request.build(), HttpResponse.BodyHandlers.ofString());

        if (response.statusCode() == 429 || response.statusCode() == 503) {
            // The registry's limit or a short outage: come back after Retry-After seconds.
            String wait = response.headers().firstValue("Retry-After").orElse("1");
            System.out.println("retry after " + wait + " s");
            return;
        }
        // 200: {"lookup_id", "results": [{"index", "kind", "matched", "cases", "velocity"}],
        //       "errors": [{"index", "code"}]}   4xx/5xx: an RFC 9457 problem with "code".
        System.out.println(response.statusCode() + " " + response.body());
    }
}
