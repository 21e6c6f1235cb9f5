//! The exhaustive check: every sequence of the actions in
//! [`exhaustive_actions`] up to a depth, explored depth first with states
//! deduplicated by hash, every invariant asserted in every reachable state
//! and on every step. Depth first, because a state is a whole VMM (about a
//! quarter of a megabyte): breadth first would hold the whole frontier.

use stateright::{Checker, Model, Property};

use crate::invariants::{check_state, check_step};
use crate::ops::{exhaustive_actions, step, Op};
use crate::system::System;

/// A state of the check: the system, and the first invariant a step into it
/// broke (no further steps are taken from a broken state).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// The system.
    pub sys: System,
    /// The broken invariant, if any.
    pub violation: Option<String>,
}

/// A change to the system after each step: a deliberately broken variant
/// of a rule, for showing that the check finds counterexamples.
pub type Mutation = fn(&mut System, &Op, &Result<u64, vmm_abi::Errno>);

/// The model of the VMM for stateright.
pub struct Exhaustive {
    /// The actions tried in every state.
    pub actions: Vec<Op>,
    /// A system variant to check instead of the real one (see the tests).
    pub mutate: Option<Mutation>,
}

impl Default for Exhaustive {
    fn default() -> Self {
        Exhaustive { actions: exhaustive_actions(), mutate: None }
    }
}

impl Model for Exhaustive {
    type State = State;
    type Action = Op;

    fn init_states(&self) -> Vec<State> {
        vec![State { sys: System::new(), violation: None }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Op>) {
        if state.violation.is_none() {
            actions.extend(self.actions.iter().copied());
        }
    }

    fn next_state(&self, last: &State, op: Op) -> Option<State> {
        let mut sys = last.sys.clone();
        let result = step(&mut sys, op);
        if let Some(mutate) = self.mutate {
            mutate(&mut sys, &op, &result);
        }
        let violation = check_step(&last.sys, &op, &result, &sys).and_then(|()| check_state(&sys)).err();
        sys.vmm.hooks_mut().calls.clear();
        Some(State { sys, violation })
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![Property::always("every invariant holds", |_, s: &State| s.violation.is_none())]
    }
}

/// What a run explored.
#[derive(Clone, Copy, Debug)]
pub struct Explored {
    /// States generated.
    pub states: usize,
    /// Distinct states.
    pub unique: usize,
    /// Deepest path.
    pub depth: usize,
}

/// Runs the check to `depth` steps (stateright counts the initial state as depth 1) and returns the counts and the first
/// counterexample found (as the broken invariant and the actions to it).
pub fn run(model: Exhaustive, depth: usize) -> (Explored, Option<(String, Vec<Op>)>) {
    let checker = model.checker().target_max_depth(depth + 1).spawn_dfs().join();
    let explored =
        Explored { states: checker.state_count(), unique: checker.unique_state_count(), depth: checker.max_depth() };
    let found = checker.discovery("every invariant holds").map(|path| {
        let why = path.last_state().violation.clone().unwrap_or_default();
        (why, path.into_actions())
    });
    (explored, found)
}
