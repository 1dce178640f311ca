"""A small liaison integrator: import records into a node, query a peer
through it, and follow the node's change feed.

    examples/python/setup.sh                       # venv + stubs (prints the python to use)
    LIAISON_API=127.0.0.1:7701 LIAISON_TOKEN=... \\
    LIAISON_STUBS=target/py-venv/stubs \\
    target/py-venv/bin/python examples/python/liaison_client.py [--peer kh-antht]

Everything goes through the node's local gRPC API with a bearer token; the
node applies its agreements, so the script never decides what may be shared.
"""
import argparse
import os
import sys
import threading

import grpc

sys.path.insert(0, os.environ.get("LIAISON_STUBS", os.path.join(os.path.dirname(__file__), "stubs")))
from liaison.v1 import changes_pb2, changes_pb2_grpc, common_pb2  # noqa: E402
from liaison.v1 import exchange_pb2, exchange_pb2_grpc, records_pb2, records_pb2_grpc  # noqa: E402


def contact_point(rid, name, hours):
    return records_pb2.Record(
        id=rid,
        handling=common_pb2.HANDLING_CODE_GREEN,
        contact_point=records_pb2.ContactPoint(
            name=name,
            role=records_pb2.CONTACT_ROLE_FOCAL_POINT,
            agency="Provincial anti-trafficking task force",
            country=os.environ.get("LIAISON_COUNTRY", "TH"),
            languages=["th", "en"],
            channels=[records_pb2.Channel(type=records_pb2.CHANNEL_TYPE_PHONE, value="+66 53 000 111")],
            availability=records_pb2.Availability(hours=hours, time_zone="Asia/Bangkok"),
            last_verified="2026-11-01",
        ),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", default="", help="peer to query (default: every peer an agreement allows)")
    ap.add_argument("--text", default="duty", help="text to query the peer for")
    args = ap.parse_args()

    api = os.environ.get("LIAISON_API", "127.0.0.1:7701").removeprefix("http://")
    meta = [("authorization", f"Bearer {os.environ['LIAISON_TOKEN']}")]
    with grpc.insecure_channel(api) as channel:
        records = records_pb2_grpc.RecordServiceStub(channel)
        changes = changes_pb2_grpc.ChangeServiceStub(channel)
        exchange = exchange_pb2_grpc.ExchangeServiceStub(channel)

        # 1. Follow the change feed from now on, in the background.
        backlog = list(changes.WatchChanges(changes_pb2.WatchChangesRequest(no_follow=True), metadata=meta))
        since = backlog[-1].change.seq if backlog else 0
        seen, done = [], threading.Event()
        stream = changes.WatchChanges(changes_pb2.WatchChangesRequest(since_seq=since), metadata=meta)

        def follow():
            try:
                for ev in stream:
                    seen.append(ev.change.record_key)
                    print(f"watch: #{ev.change.seq} {changes_pb2.ChangeType.Name(ev.change.type)} {ev.change.record_key}")
                    if len(seen) >= 3:
                        done.set()
                        return
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.CANCELLED:
                    raise

        t = threading.Thread(target=follow, daemon=True)
        t.start()

        # 2. Import a batch; bad records come back as problems naming the field.
        batch = [
            contact_point("cp-py-chiangmai", "Chiang Mai task force focal point", "08:30-16:30"),
            contact_point("cp-py-maesai", "Mae Sai border desk", "06:00-22:00"),
            contact_point("cp-py-tak", "Tak task force focal point", "08:30-16:30"),
            records_pb2.Record(id="cp-py-bad", handling=common_pb2.HANDLING_CODE_GREEN,
                               contact_point=records_pb2.ContactPoint(name="x", role=1, agency="a", country="ZZ")),
        ]
        r = records.ImportRecords(records_pb2.ImportRecordsRequest(records=batch), metadata=meta)
        print(f"imported {r.stored} of {len(batch)}")
        for p in r.problems:
            print(f"  problem in record {p.index}: {p.field}: {p.reason}")

        # 3. Ask a peer through the node; the node's agreements decide what comes back.
        q = exchange.Query(
            exchange_pb2.QueryRequest(peer=args.peer, kind=common_pb2.RECORD_KIND_CONTACT_POINT, text=args.text,
                                      purpose=common_pb2.PURPOSE_COORDINATION),
            metadata=meta,
        )
        for peer in q.peers:
            outcome = exchange_pb2.PeerOutcome.Name(peer.outcome)
            print(f"query {peer.peer}: {outcome} {len(peer.records)} record(s) {peer.error}".rstrip())
            for rec in peer.records:
                print(f"  {rec.originator}/{rec.id}: {rec.contact_point.name}")

        if not done.wait(timeout=20):
            raise SystemExit(f"the change feed showed only {seen}")
        stream.cancel()
        print("python client ok")


if __name__ == "__main__":
    main()
