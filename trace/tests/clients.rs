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
        while let Some(m) = t.next_message() {
            if c == CLIENT && n == 0 {
                assert_eq!(m.decoded(), Some(Request::CreateVm), "the scenario's first request");
            }
            t.record(&m, Err(Errno::ENOENT));
            n += 1;
        }
        assert_eq!(n, requests(c, 101));
    }
}

#[test]
fn some_messages_are_garbage_of_whole_words() {
    let mut t = ClientTrace::new(vmm_trace::SEED, PRIVILEGED, 2000);
    let mut garbage = 0;
    while let Some(m) = t.next_message() {
        if m.decoded().is_none() {
            garbage += 1;
            assert_eq!(m.bytes().len() % 8, 0, "{m:?}");
        }
        t.record(&m, Err(Errno::ENOENT));
    }
    assert!((20..200).contains(&garbage), "{garbage} of 1000");
}

#[test]
fn a_client_s_requests_follow_its_own_results() {
    let run = |created: u64| {
        let mut t = ClientTrace::new(vmm_trace::SEED, PRIVILEGED, 200);
        let mut sent = Vec::new();
        while let Some(m) = t.next_message() {
            let result = if m.decoded() == Some(Request::CreateVm) { Ok(created) } else { Err(Errno::ENOENT) };
            t.record(&m, result);
            sent.push(m);
        }
        sent
    };
    assert_eq!(run(5), run(5), "the same results, the same requests");
    assert_ne!(run(5), run(6), "the VM ids it was given are what it names");
}
