#include "exporters/otlp/retry_policy.h"

#include <gtest/gtest.h>

#include "exporters/otlp/gzip.h"
#include "exporters/otlp/rpc_status.h"

namespace hoptrace {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

TEST(RetryPolicyTest, GrpcCodesFollowTheOtlpTable) {
  // grpc::StatusCode 0..16 -> retryable? (RESOURCE_EXHAUSTED = 8 depends on RetryInfo)
  const bool kRetryable[17] = {
      false,  // OK
      true,   // CANCELLED
      false,  // UNKNOWN
      false,  // INVALID_ARGUMENT
      true,   // DEADLINE_EXCEEDED
      false,  // NOT_FOUND
      false,  // ALREADY_EXISTS
      false,  // PERMISSION_DENIED
      false,  // RESOURCE_EXHAUSTED without RetryInfo
      false,  // FAILED_PRECONDITION
      true,   // ABORTED
      true,   // OUT_OF_RANGE
      false,  // UNIMPLEMENTED
      false,  // INTERNAL
      true,   // UNAVAILABLE
      true,   // DATA_LOSS
      false,  // UNAUTHENTICATED
  };
  for (int code = 0; code < 17; ++code) {
    EXPECT_EQ(IsRetryableGrpcCode(code, /*has_retry_info=*/false), kRetryable[code]) << code;
  }
  EXPECT_TRUE(IsRetryableGrpcCode(8, /*has_retry_info=*/true));
  EXPECT_FALSE(IsRetryableGrpcCode(3, /*has_retry_info=*/true));
}

TEST(RetryPolicyTest, HttpRetriesOnly429And502To504) {
  for (long s : {429L, 502L, 503L, 504L}) EXPECT_TRUE(IsRetryableHttpStatus(s)) << s;
  for (long s : {200L, 301L, 400L, 401L, 403L, 404L, 408L, 413L, 500L, 501L, 505L}) {
    EXPECT_FALSE(IsRetryableHttpStatus(s)) << s;
  }
}

TEST(RetryAfterTest, ParsesDelaySeconds) {
  const auto now = std::chrono::system_clock::now();
  EXPECT_EQ(ParseRetryAfter("0", now), nanoseconds(0));
  EXPECT_EQ(ParseRetryAfter(" 120 ", now), seconds(120));
  // Absurd values are capped at a day; the export deadline cuts them shorter anyway.
  EXPECT_EQ(ParseRetryAfter("99999999999999999999999", now), seconds(86400));
  EXPECT_FALSE(ParseRetryAfter("-5", now));
  EXPECT_FALSE(ParseRetryAfter("soon", now));
  EXPECT_FALSE(ParseRetryAfter("", now));
  EXPECT_FALSE(ParseRetryAfter("1.5", now));
}

TEST(RetryAfterTest, ParsesHttpDatesInAllThreeForms) {
  // Sun, 06 Nov 1994 08:49:37 GMT = 784111777 (RFC 9110's example date).
  const auto date = std::chrono::system_clock::from_time_t(784111777);
  const auto now = date - seconds(30);
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", now), seconds(30));
  EXPECT_EQ(ParseRetryAfter("Sunday, 06-Nov-94 08:49:37 GMT", now), seconds(30));
  EXPECT_EQ(ParseRetryAfter("Sun Nov  6 08:49:37 1994", now), seconds(30));
  // A date in the past: retry now.
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", date + seconds(5)), nanoseconds(0));
}

TEST(RetryPolicyTest, BackoffCapGrowsGeometricallyUpToMax) {
  RetryPolicy policy({/*max_attempts=*/5, milliseconds(1000), milliseconds(5000), 1.5});
  EXPECT_EQ(policy.max_attempts(), 5);
  EXPECT_EQ(policy.BackoffCap(1), milliseconds(1000));
  EXPECT_EQ(policy.BackoffCap(2), milliseconds(1500));
  EXPECT_EQ(policy.BackoffCap(3), milliseconds(2250));
  EXPECT_EQ(policy.BackoffCap(4), milliseconds(3375));
  EXPECT_EQ(policy.BackoffCap(5), milliseconds(5000));  // 5062.5 capped
  EXPECT_EQ(policy.BackoffCap(10000), milliseconds(5000));
}

TEST(RetryPolicyTest, FullJitterScalesTheCapByTheRandomDraw) {
  double u = 0.0;
  RetryPolicy policy({5, milliseconds(1000), milliseconds(5000), 2.0}, [&u] { return u; });
  EXPECT_EQ(policy.NextDelay(1, std::nullopt), nanoseconds(0));
  u = 0.5;
  EXPECT_EQ(policy.NextDelay(1, std::nullopt), milliseconds(500));
  EXPECT_EQ(policy.NextDelay(2, std::nullopt), milliseconds(1000));
  u = 0.25;
  EXPECT_EQ(policy.NextDelay(3, std::nullopt), milliseconds(1000));
  // A broken generator cannot push the delay past the cap.
  u = 7.0;
  EXPECT_EQ(policy.NextDelay(1, std::nullopt), milliseconds(1000));
}

TEST(RetryPolicyTest, ServerDelayIsTheMinimum) {
  double u = 0.5;
  RetryPolicy policy({5, milliseconds(1000), milliseconds(5000), 2.0}, [&u] { return u; });
  EXPECT_EQ(policy.NextDelay(1, seconds(3)), seconds(3));                // above the jitter
  EXPECT_EQ(policy.NextDelay(1, milliseconds(100)), milliseconds(500));  // below it
  EXPECT_EQ(policy.NextDelay(1, nanoseconds(0)), milliseconds(500));
}

TEST(RetryPolicyTest, DefaultGeneratorStaysWithinTheWindow) {
  RetryPolicy policy({5, milliseconds(100), milliseconds(400), 2.0});
  nanoseconds max_seen{0};
  for (int i = 0; i < 2000; ++i) {
    const auto d = policy.NextDelay(3, std::nullopt);
    ASSERT_GE(d.count(), 0);
    ASSERT_LE(d, milliseconds(400));
    max_seen = std::max(max_seen, d);
  }
  EXPECT_GT(max_seen, milliseconds(300));  // it is spread over the window, not stuck at 0
}

TEST(RpcStatusTest, RoundTripsCodeMessageAndRetryInfo) {
  RpcStatus in{8, "slow down", milliseconds(1500)};
  const auto out = DecodeRpcStatus(EncodeRpcStatus(in));
  ASSERT_TRUE(out);
  EXPECT_EQ(out->code, 8);
  EXPECT_EQ(out->message, "slow down");
  ASSERT_TRUE(out->retry_delay);
  EXPECT_EQ(*out->retry_delay, milliseconds(1500));

  const auto plain = DecodeRpcStatus(EncodeRpcStatus({3, "bad span", std::nullopt}));
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->code, 3);
  EXPECT_FALSE(plain->retry_delay);
}

TEST(RpcStatusTest, RejectsBodiesThatAreNotProtobuf) {
  EXPECT_FALSE(DecodeRpcStatus("<html><body>Bad Gateway</body></html>"));
  const auto empty = DecodeRpcStatus("");
  ASSERT_TRUE(empty);  // an empty message is a valid, all-default Status
  EXPECT_EQ(empty->code, 0);
}

TEST(GzipTest, RoundTripsAndBoundsTheOutput) {
  std::string data;
  for (int i = 0; i < 10000; ++i) data += "http.request.method=GET;";
  std::string packed;
  ASSERT_TRUE(GzipCompress(data, &packed));
  ASSERT_GE(packed.size(), 2u);
  EXPECT_EQ(static_cast<uint8_t>(packed[0]), 0x1f);  // gzip magic, not a zlib header
  EXPECT_EQ(static_cast<uint8_t>(packed[1]), 0x8b);
  EXPECT_LT(packed.size(), data.size() / 20);
  std::string unpacked;
  ASSERT_TRUE(GzipDecompress(packed, &unpacked, data.size()));
  EXPECT_EQ(unpacked, data);
  EXPECT_FALSE(GzipDecompress(packed, &unpacked, data.size() - 1));
  EXPECT_FALSE(GzipDecompress(packed.substr(0, packed.size() / 2), &unpacked, data.size()));
  EXPECT_FALSE(GzipDecompress("not gzip", &unpacked, 100));
  std::string empty;
  ASSERT_TRUE(GzipCompress("", &empty));
  ASSERT_TRUE(GzipDecompress(empty, &unpacked, 0));
  EXPECT_TRUE(unpacked.empty());
}

}  // namespace
}  // namespace hoptrace
