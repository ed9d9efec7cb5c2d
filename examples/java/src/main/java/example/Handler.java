package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.PutObjectRequest;

/**
 * Java example function for the credential-refresh layer.
 *
 * <p>There is no credential code here: an S3 client with the SDK's default credential chain. With
 * AWS_LAMBDA_EXEC_WRAPPER=/opt/credential-refresh/exec-wrapper the layer's wrapper points the
 * SDK's ContainerCredentialsProvider at the extension, which keeps the assumed role's credentials
 * fresh.
 *
 * <p>Event: {"bucket": "my-bucket", "prefix": "java-0001-", "count": 8}<br>
 * Response: {"runtime": "java", "written": 8, "keys": [...], "accessKeyId": "ASIA..."}
 */
public class Handler implements RequestHandler<Map<String, Object>, Map<String, Object>> {
  private static final int MAX_COUNT = 1000;
  private static final int PARALLEL = 8;

  // Created once per execution environment, reused by warm invocations. With
  // AWS_ENDPOINT_URL_S3 set (a local endpoint), path-style addressing.
  private static final S3Client S3 =
      S3Client.builder()
          .httpClientBuilder(UrlConnectionHttpClient.builder())
          .forcePathStyle(System.getenv("AWS_ENDPOINT_URL_S3") != null)
          .build();
  private static final ExecutorService POOL = Executors.newFixedThreadPool(PARALLEL);

  @Override
  public Map<String, Object> handleRequest(Map<String, Object> event, Context context) {
    Object bucket = event == null ? null : event.get("bucket");
    if (!(bucket instanceof String) || ((String) bucket).isEmpty()) {
      throw new IllegalArgumentException("event needs \"bucket\"");
    }
    Object p = event.get("prefix");
    String prefix = p instanceof String && !((String) p).isEmpty() ? (String) p : "java-";
    int count = event.get("count") instanceof Number n ? n.intValue() : 8;
    if (count < 1 || count > MAX_COUNT) {
      throw new IllegalArgumentException("\"count\" must be 1.." + MAX_COUNT + ", got " + count);
    }

    List<String> keys = new ArrayList<>();
    List<CompletableFuture<Void>> puts = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      String key = String.format("%s%04d", prefix, i);
      String body = String.format("object %d of %d, written by the Java example%n", i + 1, count);
      keys.add(key);
      puts.add(
          CompletableFuture.runAsync(
              () ->
                  S3.putObject(
                      PutObjectRequest.builder().bucket((String) bucket).key(key).build(),
                      RequestBody.fromString(body)),
              POOL));
    }
    try {
      CompletableFuture.allOf(puts.toArray(new CompletableFuture[0])).join();
    } catch (CompletionException e) {
      throw e.getCause() instanceof RuntimeException r ? r : e;
    }

    // The access key ID only, for the caller to see which credentials were
    // used. Never return or log the secret or the session token.
    String accessKeyId =
        S3.serviceClientConfiguration().credentialsProvider().resolveIdentity().join().accessKeyId();
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("runtime", "java");
    out.put("written", keys.size());
    out.put("keys", keys);
    out.put("accessKeyId", accessKeyId);
    return out;
  }
}
