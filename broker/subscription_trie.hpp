#pragma once
// A trie of topic filters, one node per level, for matching a topic name to
// every subscription whose filter matches it.
//
// Shape. The filter "a/+/c" is the path root -"a"-> n1 -'+'-> n2 -"c"-> n3
// and its subscriptions live on n3. Each node has:
//
//   children   exact levels, keyed by the level text ("" is a legal level:
//              "a//b" has an empty middle level);
//   plus       at most one '+' child (a '+' level in a valid filter is always
//              the wildcard, and a name never contains '+', so it is kept
//              apart from `children` and costs no hash lookup);
//   subs       subscriptions whose filter ends at this node;
//   hash_subs  subscriptions whose filter is this node's path followed by
//              "/#" (for the root: the filter "#"). A '#' is always the last
//              level, so it never needs a node of its own.
//
// Each subscription set is an unordered_map<Key, Value, Hash>: Key is the
// subscriber (e.g. a session id), Value the options of that subscription.
// One (filter, key) pair holds at most one Value: inserting it again
// replaces the Value (MQTT 5 §3.8.4: a SUBSCRIBE to an existing filter
// replaces the subscription).
//
// Matching. A name of n levels is walked from the root. At a node reached
// after consuming k levels, `hash_subs` match (the '#' covers the remaining
// n-k levels, zero included, so "a/#" matches "a"); once all n levels are
// consumed `subs` match; otherwise the walk continues into the exact child
// for level k+1 and into the '+' child. The cost is O(n x 2^(number of '+'
// branches actually present along the way)), independent of the number of
// subscriptions, usually a handful of hash lookups. Lookups take the level as
// a std::string_view (transparent hash and equality), so match() allocates
// nothing; its recursion depth is the number of levels, bounded by
// topic::limits::max_levels.
//
// The '$' rule (MQTT 5 §4.7.2): a name whose first level starts with '$' is
// not matched by a '+' or '#' at the first level, so at the root the walk
// skips `plus` and `hash_subs` for such names. "$SYS/#" still matches
// "$SYS/x" through the exact child "$SYS".
//
// Invariants:
//   - every node other than the root has at least one subscription (in
//     `subs` or `hash_subs`) in itself or below it: erase removes nodes left
//     empty, so memory follows the live subscriptions (node_count());
//   - size() is the number of (filter, key) pairs stored.
//
// Preconditions: filters given to insert/erase/find must be valid
// (topic::check_filter) and not shared ("$share/{group}/..." is resolved by
// the caller, which stores the inner filter). Names given to match() should
// be valid (topic::check_name); with a '+' or '#' in a name the result is
// unspecified but safe.
//
// Not thread safe: one owner (a shard) touches it. Callbacks must not modify
// the trie they are called from.

#include "broker/topic.hpp"

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace pulsegate::broker {

template <class Key, class Value, class Hash = std::hash<Key>>
class subscription_trie {
public:
    // Movable (the moved-from trie is empty), not copyable.
    subscription_trie() = default;
    subscription_trie(subscription_trie&& other) noexcept
        : root_(std::move(other.root_)), size_(std::exchange(other.size_, 0)) {
        other.root_ = node{};
    }
    subscription_trie& operator=(subscription_trie&& other) noexcept {
        if (this != &other) {
            root_ = std::exchange(other.root_, node{});
            size_ = std::exchange(other.size_, 0);
        }
        return *this;
    }

    // Inserts or replaces the subscription of `key` on `filter`.
    // Returns true if it was new, false if it replaced one.
    bool insert(std::string_view filter, const Key& key, Value value) {
        node* n = &root_;
        std::size_t pos = 0;
        bool done = false;
        subscribers* target = nullptr;
        while (!done) {
            const auto level = topic::next_level(filter, pos, done);
            if (level == "#") {
                target = &n->hash_subs;
                break;
            }
            if (level == "+") {
                if (!n->plus) n->plus = std::make_unique<node>();
                n = n->plus.get();
                continue;
            }
            auto it = n->children.find(level);
            if (it == n->children.end())
                it = n->children.emplace(std::string(level), std::make_unique<node>()).first;
            n = it->second.get();
        }
        if (!target) target = &n->subs;
        auto [it, inserted] = target->try_emplace(key, std::move(value));
        if (!inserted) {
            it->second = std::move(value);
            return false;
        }
        ++size_;
        return true;
    }

    // Removes the subscription of `key` on `filter`, and the nodes this leaves
    // empty. Returns whether it existed.
    bool erase(std::string_view filter, const Key& key) {
        const bool erased = erase_at(root_, filter, 0, false, key);
        if (erased) --size_;
        return erased;
    }

    // The Value of `key` on exactly `filter` (no matching), or nullptr. The
    // pointer is valid until the next insert/erase/clear.
    const Value* find(std::string_view filter, const Key& key) const {
        const subscribers* set = find_set(filter);
        if (!set) return nullptr;
        const auto it = set->find(key);
        return it == set->end() ? nullptr : &it->second;
    }

    // Calls fn(const Key&, const Value&) for every subscription whose filter
    // matches `name`. A key subscribed with overlapping filters is visited once
    // per matching filter; de-duplication is the caller's policy (MQTT 5
    // allows either). Order is unspecified. Allocates nothing.
    template <class Fn>
    void match(std::string_view name, Fn&& fn) const {
        const bool dollar = !name.empty() && name.front() == '$';
        if (!dollar) visit(root_.hash_subs, fn);
        match_at(root_, name, 0, dollar, fn);
    }

    // Calls fn(std::string_view filter, const Key&, const Value&) for every
    // stored subscription, e.g. to persist or list them. The filter view is
    // valid during the call only. Allocates a buffer for the filter text.
    template <class Fn>
    void for_each(Fn&& fn) const {
        std::string path;
        for_each_at(root_, true, path, fn);
    }

    // Removes every subscription.
    void clear() noexcept {
        root_ = node{};
        size_ = 0;
    }

    // Number of (filter, key) subscriptions.
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

    // Number of nodes below the root, for tests of pruning and for memory
    // statistics. O(nodes).
    std::size_t node_count() const noexcept { return count_nodes(root_); }

private:
    // Transparent hash so a std::string_view level finds a std::string key.
    struct level_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };

    using subscribers = std::unordered_map<Key, Value, Hash>;

    struct node {
        std::unordered_map<std::string, std::unique_ptr<node>, level_hash, std::equal_to<>> children;
        std::unique_ptr<node> plus;
        subscribers subs;
        subscribers hash_subs;

        bool unused() const noexcept {
            return children.empty() && !plus && subs.empty() && hash_subs.empty();
        }
    };

    template <class Fn>
    static void visit(const subscribers& set, Fn& fn) {
        for (const auto& [k, v] : set) fn(k, v);
    }

    // `n` matched the levels before `pos`; the name has levels left from
    // `pos`. `hash_subs` of `n` were already visited by the caller.
    template <class Fn>
    static void match_at(const node& n, std::string_view name, std::size_t pos, bool at_dollar_root,
                         Fn& fn) {
        bool done = false;
        const auto level = topic::next_level(name, pos, done);
        if (auto it = n.children.find(level); it != n.children.end())
            enter(*it->second, name, pos, done, fn);
        if (n.plus && !at_dollar_root) enter(*n.plus, name, pos, done, fn);
    }

    template <class Fn>
    static void enter(const node& n, std::string_view name, std::size_t pos, bool done, Fn& fn) {
        visit(n.hash_subs, fn);
        if (done)
            visit(n.subs, fn);
        else
            match_at(n, name, pos, false, fn);
    }

    bool erase_at(node& n, std::string_view filter, std::size_t pos, bool done, const Key& key) {
        if (done) return n.subs.erase(key) > 0;
        const auto level = topic::next_level(filter, pos, done);
        if (level == "#") return n.hash_subs.erase(key) > 0;
        if (level == "+") {
            if (!n.plus) return false;
            const bool erased = erase_at(*n.plus, filter, pos, done, key);
            if (n.plus->unused()) n.plus.reset();
            return erased;
        }
        const auto it = n.children.find(level);
        if (it == n.children.end()) return false;
        const bool erased = erase_at(*it->second, filter, pos, done, key);
        if (it->second->unused()) n.children.erase(it);
        return erased;
    }

    const subscribers* find_set(std::string_view filter) const {
        const node* n = &root_;
        std::size_t pos = 0;
        bool done = false;
        while (!done) {
            const auto level = topic::next_level(filter, pos, done);
            if (level == "#") return &n->hash_subs;
            if (level == "+") {
                n = n->plus.get();
            } else {
                const auto it = n->children.find(level);
                n = it == n->children.end() ? nullptr : it->second.get();
            }
            if (!n) return nullptr;
        }
        return &n->subs;
    }

    // `path` is the filter text leading to `n`; the root's is "" but so is
    // that of a first-level "" child, hence `is_root`.
    template <class Fn>
    static void for_each_at(const node& n, bool is_root, std::string& path, Fn& fn) {
        const auto base = path.size();
        const auto descend = [&](std::string_view suffix) {
            if (!is_root) path.push_back('/');
            path.append(suffix);
        };
        for (const auto& [k, v] : n.subs) fn(std::string_view(path), k, v);
        if (!n.hash_subs.empty()) {
            descend("#");
            for (const auto& [k, v] : n.hash_subs) fn(std::string_view(path), k, v);
            path.resize(base);
        }
        for (const auto& [level, child] : n.children) {
            descend(level);
            for_each_at(*child, false, path, fn);
            path.resize(base);
        }
        if (n.plus) {
            descend("+");
            for_each_at(*n.plus, false, path, fn);
            path.resize(base);
        }
    }

    static std::size_t count_nodes(const node& n) noexcept {
        std::size_t c = 0;
        for (const auto& [level, child] : n.children) c += 1 + count_nodes(*child);
        if (n.plus) c += 1 + count_nodes(*n.plus);
        return c;
    }

    node root_;
    std::size_t size_ = 0;
};

} // namespace pulsegate::broker
