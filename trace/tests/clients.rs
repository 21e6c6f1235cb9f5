//! The two clients' parts of the trace and the order the VMM serves them
//! in: every request of each part is served once, in its client's order.

use vmm_abi::protocol::Request;
use vmm_abi::Errno;
use vmm_trace::world::{CLIENT, PRIVILEGED};
use vmm_trace::{requests, turn, ClientTrace, SCENARIO};

#[test]
fn the_turns_give_the_scenario_to_the_first_client_then_alternate() {
    assert!((0..SCENARIO).all(|i| turn(i) == CLIENT));
    let after: Vec<_> = (SCENARIO..SCENARIO + 4).map(turn).collect();
    assert_eq!(after, [PRIVILEGED, CLIENT, PRIVILEGED, CLIENT]);
    for random in [0, 1, 7, 2000] {
        let total = SCENARIO + random;
        for c in [CLIENT, PRIVILEGED] {
            assert_eq!((0..total).filter(|&i| turn(i) == c).count(), requests(c, random), "{c:?}, {random}");
        }
    }
}

#[test]
fn each_client_sends_exactly_its_turns_and_the_first_sends_the_scenario_first() {
    for c in [CLIENT, PRIVILEGED] {
        let mut t = ClientTrace::new(vmm_trace::SEED, c, 101);
        let mut n = 0;
        while let Some(req) = t.next_request() {
            if c == CLIENT && n == 0 {
                assert_eq!(req, Request::CreateVm, "the scenario's first request");
            }
            t.record(&req, Err(Errno::ENOENT));
            n += 1;
        }
        assert_eq!(n, requests(c, 101));
    }
}

#[test]
fn a_client_s_requests_follow_its_own_results() {
    let run = |created: u64| {
        let mut t = ClientTrace::new(vmm_trace::SEED, PRIVILEGED, 200);
        let mut reqs = Vec::new();
        while let Some(req) = t.next_request() {
            let result = if req == Request::CreateVm { Ok(created) } else { Err(Errno::ENOENT) };
            t.record(&req, result);
            reqs.push(req);
        }
        reqs
    };
    assert_eq!(run(5), run(5), "the same results, the same requests");
    assert_ne!(run(5), run(6), "the VM ids it was given are what it names");
}
