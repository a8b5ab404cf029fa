// jinja::parse: tokens -> syntax tree, with the grammar (and operator precedence) of the reference
// renderer @huggingface/jinja. Throws jinja::Error naming the line and the unsupported construct.
#pragma once

#include <vector>

#include "tidal/tokenizer/jinja/lexer.h"
#include "tidal/tokenizer/jinja/node.h"

namespace tidal::jinja {

NodeList parse(const std::vector<Token>& tokens);

}  // namespace tidal::jinja
