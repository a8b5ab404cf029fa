// The fixed corpus of bench_tokenizer (and of bench/tokenizer_compare.js, which reads the files
// bench_tokenizer writes): ~1 MiB of English and ~1 MiB of Chinese in 4 KiB documents, generated
// deterministically from word lists (varied enough that a word cache does not see one text).
#pragma once

#include <random>
#include <string>
#include <vector>

namespace tidal::bench {

inline std::vector<std::string> make_documents(bool chinese, size_t total_bytes = 1 << 20) {
  const std::vector<std::string> english = {
      "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
      "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you",
      "model", "token", "inference", "memory", "scheduler", "throughput", "latency", "request", "server",
      "language", "training", "reinforcement", "learning", "gradient", "distributed", "attention", "cache",
      "experiment", "results", "performance", "significantly", "however", "although", "therefore", "2024",
      "3.14", "1,000", "don't", "it's", "we'll", "GPU", "CPU", "OpenAI", "Python", "C++", "e.g.", "U.S."};
  const std::vector<std::string> chinese_words = {
      "我们", "模型", "推理", "服务器", "内存", "调度", "吞吐量", "延迟", "请求", "语言", "训练", "强化学习",
      "梯度", "分布式", "注意力", "缓存", "实验", "结果", "性能", "显著", "但是", "因此", "虽然", "的", "了",
      "是", "在", "和", "有", "中国", "北京", "上海", "数据", "计算", "系统", "方法", "问题", "研究", "发展",
      "技术", "人工智能", "自然语言处理", "2024年", "第一", "一个", "可以", "没有", "这个", "那些"};
  const std::vector<std::string> english_punct = {" ", " ", " ", " ", " ", ", ", ". ", "; ", "\n", " (", ") "};
  const std::vector<std::string> chinese_punct = {"", "", "", "", "，", "。", "、", "；", "\n", "（", "）"};
  std::mt19937 rng(chinese ? 7 : 3);
  const auto& words = chinese ? chinese_words : english;
  const auto& punct = chinese ? chinese_punct : english_punct;
  std::vector<std::string> docs;
  size_t total = 0;
  while (total < total_bytes) {
    std::string doc;
    while (doc.size() < 4096) {
      doc += words[rng() % words.size()];
      doc += punct[rng() % punct.size()];
    }
    total += doc.size();
    docs.push_back(std::move(doc));
  }
  return docs;
}

}  // namespace tidal::bench
