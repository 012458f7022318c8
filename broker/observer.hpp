#pragma once
// The broker's publish port: how the rest of pulsegate (ingest) sees every
// accepted application message without the broker knowing what it is for.

#include "broker/message.hpp"

namespace pulsegate::broker {

class publish_observer {
public:
    virtual ~publish_observer() = default;

    // Called on the publisher's shard thread for every accepted publish (after
    // authorisation, before delivery), with its internal topic. Must not block:
    // copy what is needed (the message is shared, so keeping `m` is cheap) and
    // hand it to another thread through a bounded queue.
    virtual void on_publish(const message_ptr& m) = 0;
};

} // namespace pulsegate::broker
