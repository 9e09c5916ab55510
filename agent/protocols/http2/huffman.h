// HPACK's static Huffman code (RFC 7541 section 5.2 and Appendix B), decoding
// only: the agent reads header blocks, it never encodes them.
#pragma once

#include <string>
#include <string_view>

namespace hoptrace::http2 {

// Appends the decoded string to *out. False if the input is not a valid
// Huffman-encoded string: it contains the EOS symbol, or ends in padding
// longer than 7 bits or not made of the most significant bits of EOS
// (section 5.2: "A padding strictly longer than 7 bits MUST be treated as a
// decoding error", "A padding not corresponding to the most significant bits
// of the code for the EOS symbol MUST be treated as a decoding error").
bool HuffmanDecode(std::string_view in, std::string* out);

}  // namespace hoptrace::http2
