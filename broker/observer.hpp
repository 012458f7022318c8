#pragma once
// The broker's publish port: how the rest of pulsegate (ingest) sees every
// accepted application message without the broker knowing what it is for.

#include "broker/message.hpp"
#include "broker/protocol/reason_code.hpp"

#include <memory>

namespace pulsegate::broker {

struct ack_ticket;

// Lets an observer delay the publisher's acknowledgement (QoS 1 PUBACK, QoS 2
// PUBREC) until something it started is done, e.g. until the reading is
// committed to disk. take() returns a token (null for QoS 0: nothing to
// delay); the acknowledgement goes once every token taken has been passed to
// server::release_hold, from any thread.
class ack_hold {
public:
    explicit ack_hold(const std::shared_ptr<ack_ticket>* ticket) noexcept : ticket_(ticket) {}
    std::shared_ptr<void> take() const;

private:
    const std::shared_ptr<ack_ticket>* ticket_;
};

class publish_observer {
public:
    virtual ~publish_observer() = default;

    // Called on the publisher's shard thread for every authorised publish
    // (before delivery), with its internal topic. Must not block: copy what
    // is needed (the message is shared, so keeping `m` is cheap) and hand it
    // to another thread through a bounded queue.
    //
    // Returning anything but success refuses the publish: it is not
    // delivered nor retained, the v5 publisher gets that reason code in its
    // PUBACK/PUBREC (3.1.1: acknowledged and dropped, as for a denied
    // publish). A refusing observer must not have taken a hold.
    virtual protocol::reason_code on_publish(const message_ptr& m, const ack_hold& hold) = 0;

    // Called on shard `shard`'s thread once it has handled everything it
    // read (the end of a batch, after the batch's writes were started),
    // when on_publish was called on that shard: the moment to act on what
    // on_publish collected, in one go.
    virtual void on_batch_end(unsigned shard) { (void)shard; }

    // Called on the same thread right after on_batch_end, once what it
    // published (alert events) was written out: the moment for work that
    // must not delay those writes (waking other threads).
    virtual void on_batch_sent(unsigned shard) { (void)shard; }
};

// An in-process reader of routed messages (the upstream bridge): sees every
// message the broker routes whose internal topic matches one of the filters
// it was added with (server::add_tap): client publishes and wills after the
// ACL and the observer, and the server's own publishes (alert events,
// $SYS), except those it injected itself (server::publish's `from_tap`),
// which is what keeps a bridge from sending an imported message back.
class message_tap {
public:
    virtual ~message_tap() = default;

    // On the routing shard's thread, once per message, before delivery.
    // `filter` is the index of the first of the tap's filters that matched.
    // Must not block; `hold` delays the publisher's acknowledgement as for
    // publish_observer (until the tap has stored the message).
    virtual void on_message(const message_ptr& m, unsigned filter, const ack_hold& hold) = 0;
};

} // namespace pulsegate::broker
