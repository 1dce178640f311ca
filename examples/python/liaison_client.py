"""A small liaison integrator: the daily operations of a case system
against its own unit's node.

    examples/python/setup.sh                       # venv + stubs (prints the python to use)
    LIAISON_API=127.0.0.1:7701 LIAISON_TOKEN=... \\
    LIAISON_STUBS=target/py-venv/stubs \\
    target/py-venv/bin/python examples/python/liaison_client.py --peer kh-antht \\
        --identifier passport:N0123456 --identifier passport:X9999999

It follows the change feed, imports a batch (and retries it safely with the
same request_id), queries a peer, runs a hit/no-hit check and sends a formal
request citing the hits. Everything goes through the node's local gRPC API
with a bearer token (an integrator's is enough); the node applies its
agreements, so the script never decides what may be shared.
"""
import argparse
import os
import sys
import threading
import uuid

import grpc

sys.path.insert(0, os.environ.get("LIAISON_STUBS", os.path.join(os.path.dirname(__file__), "stubs")))
from liaison.v1 import changes_pb2, changes_pb2_grpc, common_pb2  # noqa: E402
from liaison.v1 import exchange_pb2, exchange_pb2_grpc, records_pb2, records_pb2_grpc  # noqa: E402
from liaison.v1 import requests_pb2, requests_pb2_grpc  # noqa: E402


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


def identifier(text):
    """TYPE:VALUE (passport, national_id, phone, email, company_registration, bank_account)."""
    kind, sep, value = text.partition(":")
    if not sep or not kind or not value:
        raise argparse.ArgumentTypeError(f"{text}: expected TYPE:VALUE, e.g. passport:N0123456")
    try:
        t = records_pb2.IdentifierType.Value(f"IDENTIFIER_TYPE_{kind.upper()}")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: unknown identifier type {kind}") from None
    return exchange_pb2.IdentifierQuery(type=t, value=value)


def purpose(text):
    try:
        return common_pb2.Purpose.Value(f"PURPOSE_{text.upper()}")
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown purpose {text}") from None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", default="",
                    help="peer to query, check and send the request to (query and check: default every peer "
                         "an agreement allows; the request needs a peer)")
    ap.add_argument("--text", default="duty", help="text to query the peer's contact points for")
    ap.add_argument("--identifier", type=identifier, action="append", default=[],
                    help="TYPE:VALUE to check, e.g. passport:N0123456 (repeatable)")
    ap.add_argument("--purpose", type=purpose, default=common_pb2.PURPOSE_INVESTIGATION,
                    help="purpose of the check and the request (default investigation)")
    ap.add_argument("--request-type", default="information_request",
                    help="an SOP request type of the agreement (default information_request)")
    ap.add_argument("--subject", default="Identifiers checked by the case system", help="the request's subject")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # the feed's lines in order with the rest

    api = os.environ.get("LIAISON_API", "127.0.0.1:7701").removeprefix("http://")
    meta = [("authorization", f"Bearer {os.environ['LIAISON_TOKEN']}")]
    with grpc.insecure_channel(api) as channel:
        records = records_pb2_grpc.RecordServiceStub(channel)
        changes = changes_pb2_grpc.ChangeServiceStub(channel)
        exchange = exchange_pb2_grpc.ExchangeServiceStub(channel)
        requests = requests_pb2_grpc.RequestServiceStub(channel)

        # 1. Follow the change feed from now on, in the background.
        backlog = list(changes.WatchChanges(changes_pb2.WatchChangesRequest(no_follow=True), metadata=meta))
        since = backlog[-1].change.seq if backlog else 0
        created, changed, failed = set(), threading.Condition(), []
        stream = changes.WatchChanges(changes_pb2.WatchChangesRequest(since_seq=since), metadata=meta)

        def follow():
            try:
                for ev in stream:
                    c = ev.change
                    print(f"watch: #{c.seq} {changes_pb2.ChangeType.Name(c.type)} {c.record_key or c.request_id}")
                    with changed:
                        if ev.change.type == changes_pb2.CHANGE_TYPE_RECORD_CREATED:
                            created.add(ev.change.record_key)
                        changed.notify_all()
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.CANCELLED:
                    with changed:
                        failed.append(e)
                        changed.notify_all()

        t = threading.Thread(target=follow, daemon=True)
        t.start()

        # 2. Import a batch; bad records come back as problems naming the field.
        # The request_id makes the call safe to retry: the node answers a repeat
        # with the first answer instead of storing anything again.
        batch = [
            contact_point("cp-py-chiangmai", "Chiang Mai task force focal point", "08:30-16:30"),
            contact_point("cp-py-maesai", "Mae Sai border desk", "06:00-22:00"),
            contact_point("cp-py-tak", "Tak task force focal point", "08:30-16:30"),
            records_pb2.Record(id="cp-py-bad", handling=common_pb2.HANDLING_CODE_GREEN,
                               contact_point=records_pb2.ContactPoint(name="x", role=1, agency="a", country="ZZ")),
        ]
        call = records_pb2.ImportRecordsRequest(records=batch, request_id=str(uuid.uuid4()))
        first = records.ImportRecords(call, metadata=meta, timeout=30)
        print(f"imported {first.stored} of {len(batch)}")
        for p in first.problems:
            print(f"  problem in record {p.index}: {p.field}: {p.reason}")
        rejected = {p.index for p in first.problems}
        stored = [r.id for i, r in enumerate(batch) if i not in rejected]

        # The answer was lost (say): send the very same call again.
        again = records.ImportRecords(call, metadata=meta, timeout=30)
        if (again.stored, list(again.stored_ids), len(again.problems)) != (
                first.stored, list(first.stored_ids), len(first.problems)):
            raise SystemExit(f"the retried import answered differently: stored {again.stored} "
                             f"{list(again.stored_ids)}, first stored {first.stored} {list(first.stored_ids)}")
        print(f"retry answered the same: stored {again.stored}, ids {', '.join(again.stored_ids)}")

        # 3. Ask a peer through the node; the node's agreements decide what comes back.
        q = exchange.Query(
            exchange_pb2.QueryRequest(peer=args.peer, kind=common_pb2.RECORD_KIND_CONTACT_POINT, text=args.text,
                                      purpose=common_pb2.PURPOSE_COORDINATION),
            metadata=meta, timeout=30,
        )
        for peer in q.peers:
            outcome = exchange_pb2.PeerOutcome.Name(peer.outcome)
            print(f"query {peer.peer}: {outcome} {len(peer.records)} record(s) {peer.error}".rstrip())
            for rec in peer.records:
                print(f"  {rec.originator}/{rec.id}: {rec.contact_point.name}")

        # 4. Hit/no-hit check: only yes/no and a reference to cite come back.
        references = []
        if args.identifier:
            c = exchange.CheckIdentifiers(
                exchange_pb2.CheckIdentifiersRequest(peer=args.peer, identifiers=args.identifier,
                                                     purpose=args.purpose),
                metadata=meta, timeout=30,
            )
            for peer in c.peers:
                print(f"check {peer.peer}: {exchange_pb2.PeerOutcome.Name(peer.outcome)} {peer.error}".rstrip())
                for r in peer.results:
                    if r.hit:
                        print(f"  {r.identifier}: hit, reference {r.reference}")
                        references.append(r.reference)
                    else:
                        print(f"  {r.identifier}: no hit")

        # 5. A formal request under the agreement's SOP, citing the hits.
        if args.peer:
            sent = requests.SendRequest(
                requests_pb2.SendRequestRequest(
                    to=args.peer, request_type=args.request_type, purpose=args.purpose, subject=args.subject,
                    body="Please share what you hold on the identifiers that matched.", refs=references,
                    request_id=str(uuid.uuid4()),
                ),
                metadata=meta, timeout=30,
            ).request
            print(f"request {sent.id}: {requests_pb2.RequestState.Name(sent.state)} "
                  f"({sent.header.request_type} to {sent.header.to_node})")

        # 6. The feed showed this client's records, each created once.
        def shown():
            return failed or all(any(k.endswith(f"/{rid}") for k in created) for rid in stored)

        with changed:
            ok = changed.wait_for(shown, timeout=20)
        if failed:
            raise failed[0]
        if not ok:
            raise SystemExit(f"the change feed showed only {sorted(created)}")
        stream.cancel()
        t.join(timeout=5)
        print("python client ok")


if __name__ == "__main__":
    main()
