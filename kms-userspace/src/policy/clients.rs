//! The Count field (spec 7.2): vlmcsd's default 2×N, or a maintained list of
//! client machine ids per application that behaves like a genuine host.

use std::sync::Mutex;

use rand::Rng;
use uuid::Uuid;

use crate::kms::hresult;

/// The most CMIDs a genuine host stores (vlmcsd's array size).
pub const LIST_CAPACITY_MAX: usize = 671;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStart {
    /// Pre-filled with capacity/2 − 1 random ids (vlmcsd `-E0`, the default).
    Prefilled,
    /// Empty: counts start at 1 (vlmcsd `-E1`).
    Empty,
}

/// vlmcsd's default: R = 2N (1 when N = 0), refused when over 2000.
pub fn doubled_count(n_policy: u32, floor: u32) -> Result<u32, u32> {
    let r = if n_policy == 0 {
        1
    } else {
        n_policy.saturating_mul(2)
    };
    if r > 2000 {
        return Err(hresult::INVALID_DATA);
    }
    Ok(r.max(floor))
}

struct List {
    ids: Vec<Uuid>,
    capacity: usize,
    /// Next slot to overwrite once the list is full.
    ring: usize,
}

/// One list per application, keyed by application id.
pub struct ClientLists {
    lists: Mutex<Vec<(Uuid, List)>>,
}

impl ClientLists {
    /// `apps`: (application id, initial capacity).
    pub fn new(apps: &[(Uuid, u32)], start: ListStart, rng: &mut impl Rng) -> Self {
        let lists = apps
            .iter()
            .map(|&(app, capacity)| {
                let capacity = (capacity as usize).min(LIST_CAPACITY_MAX);
                let prefill = match start {
                    ListStart::Prefilled => (capacity / 2).saturating_sub(1),
                    ListStart::Empty => 0,
                };
                let ids = (0..prefill)
                    .map(|_| Uuid::from_u128(rng.random()))
                    .collect();
                (
                    app,
                    List {
                        ids,
                        capacity,
                        ring: 0,
                    },
                )
            })
            .collect();
        ClientLists {
            lists: Mutex::new(lists),
        }
    }

    /// Records `cmid` in `app`'s list (the first list when `app` has none) and
    /// returns the count to report.
    pub fn count(&self, app: Uuid, cmid: Uuid, n_policy: u32) -> Result<u32, u32> {
        let mut lists = self
            .lists
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let index = lists.iter().position(|(a, _)| *a == app).unwrap_or(0);
        let Some((_, list)) = lists.get_mut(index) else {
            return Err(hresult::INVALID_DATA);
        };
        let wanted = (n_policy as usize).saturating_mul(2).min(LIST_CAPACITY_MAX);
        list.capacity = list.capacity.max(wanted);
        if !list.ids.contains(&cmid) {
            if list.ids.len() < list.capacity {
                if list.ids.len() >= LIST_CAPACITY_MAX {
                    return Err(hresult::TOO_MANY_CLIENTS);
                }
                list.ids.push(cmid);
            } else {
                let slot = list.ring % list.capacity;
                list.ids[slot] = cmid;
                list.ring = (slot + 1) % list.capacity;
            }
        }
        Ok(list.ids.len() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubled_count_matches_the_observed_values() {
        let observed = [
            (0, 1),
            (1, 2),
            (2, 4),
            (3, 6),
            (5, 10),
            (25, 50),
            (1000, 2000),
        ];
        for (n, count) in observed {
            assert_eq!(doubled_count(n, 0), Ok(count), "N = {n}");
        }
        assert_eq!(doubled_count(1001, 0), Err(hresult::INVALID_DATA));
        assert_eq!(doubled_count(u32::MAX, 0), Err(hresult::INVALID_DATA));
        assert_eq!(doubled_count(1, 5), Ok(5));
    }

    #[test]
    fn prefilled_windows_list_counts_25_to_50_then_stays() {
        let app = Uuid::from_u128(1);
        let lists = ClientLists::new(&[(app, 50)], ListStart::Prefilled, &mut rand::rng());
        let counts: Vec<u32> = (0..30)
            .map(|i| lists.count(app, Uuid::from_u128(100 + i), 25).unwrap())
            .collect();
        assert_eq!(counts[0], 25);
        assert_eq!(counts[25], 50);
        assert_eq!(counts[29], 50);
        // A known client sees the count unchanged.
        assert_eq!(lists.count(app, Uuid::from_u128(129), 25), Ok(50));
    }

    #[test]
    fn empty_start_counts_from_one_and_unknown_apps_use_the_first_list() {
        let (win, office) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let lists = ClientLists::new(
            &[(win, 50), (office, 10)],
            ListStart::Empty,
            &mut rand::rng(),
        );
        assert_eq!(lists.count(office, Uuid::from_u128(7), 5), Ok(1));
        assert_eq!(
            lists.count(Uuid::from_u128(99), Uuid::from_u128(8), 25),
            Ok(1)
        );
        assert_eq!(lists.count(win, Uuid::from_u128(9), 25), Ok(2));
    }
}
