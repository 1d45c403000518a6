//! The kernel side of `Ipvs`: the generic-netlink family "IPVS" on a netlink socket of neli's.
//! neli's router resolves the family's id through the generic-netlink controller; the requests
//! then go out on a plain neli socket, framed here, so that a batch of changes is one
//! `sendmsg` of many messages and one read of their ACKs (the kernel handles the messages of a
//! datagram in order, each on its own, and acknowledges each: ipvsadm waits for every one).
//! Dumps go one at a time, as the kernel allows one per socket. Every answer is read with its
//! lengths checked; a message that is not ours (another sequence number) is skipped.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

use neli::consts::socket::{Msg, NlFamily};
use neli::router::synchronous::NlRouter;
use neli::socket::NlSocket;
use neli::utils::Groups;

use super::procfs::{self, ListedKey};
use super::wire::{self, Request};
use super::{
    Change, DestinationEntry, Info, Ipvs, IpvsError, Service, ServiceEntry, ServiceKey, SyncDaemon,
    SyncState, TableEntry, Timeouts,
};

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
/// SOL_NETLINK options: no copy of a refused request in its error answer; the ACKs of a batch
/// stay small.
const NETLINK_CAP_ACK: libc::c_int = 10;
/// Requests sent in one datagram, at most; the refusals of all of them must fit the receive
/// buffer together.
const BATCH: usize = 1024;
/// The size a datagram of requests stops growing at (the socket's send buffer is larger).
const BATCH_BYTES: usize = 64 << 10;
const RECEIVE_BUFFER: usize = 4 << 20;
/// The receive buffer: the kernel makes no part of a dump larger than 32 KiB.
const DATAGRAM: usize = 32 << 10;

/// IPVS through generic netlink.
pub struct KernelIpvs {
    socket: NlSocket,
    family: u16,
    sequence: u32,
    buffer: Vec<u8>,
    /// The kernel's text listing of the table (/proc/net/ip_vs): one read for what takes a
    /// dump per service over netlink.
    listing: PathBuf,
}

fn io_error(operation: &str, e: &io::Error) -> IpvsError {
    IpvsError::new(operation, e.raw_os_error(), e.to_string())
}

impl KernelIpvs {
    /// Opens a socket and finds the family. The family exists once ip_vs is loaded; without
    /// it the error says so.
    pub fn open() -> Result<KernelIpvs, IpvsError> {
        let operation = "open the IPVS generic-netlink family";
        let family = {
            let (router, _) = NlRouter::connect(NlFamily::Generic, None, Groups::empty())
                .map_err(|e| IpvsError::new(operation, None, e.to_string()))?;
            router
                .resolve_genl_family(wire::FAMILY_NAME)
                .map_err(|e| match e {
                    neli::err::RouterError::Nlmsgerr(_) => IpvsError::new(
                        operation,
                        Some(libc::ENOENT),
                        "the kernel has no IPVS family (is the ip_vs module loaded?)",
                    ),
                    other => IpvsError::new(operation, None, other.to_string()),
                })?
        };
        let socket = NlSocket::connect(NlFamily::Generic, None, Groups::empty())
            .map_err(|e| io_error(operation, &e))?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
        let int = |level: libc::c_int, option: libc::c_int, value: libc::c_int| {
            // SAFETY: setsockopt reads an int from a valid pointer for the given length.
            unsafe {
                libc::setsockopt(
                    fd,
                    level,
                    option,
                    &value as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            }
        };
        // Room for the refusals of a whole batch: beyond net.core.rmem_max as root (FORCE),
        // else as far as the limit allows.
        if int(
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            RECEIVE_BUFFER as libc::c_int,
        ) != 0
            && socket.set_recv_buffer_size(RECEIVE_BUFFER).is_err()
        {
            log::debug!("ipvs: the receive buffer stays at its default size");
        }
        int(libc::SOL_NETLINK, NETLINK_CAP_ACK, 1);
        Ok(KernelIpvs {
            socket,
            family,
            sequence: 0,
            buffer: vec![0; DATAGRAM],
            listing: PathBuf::from("/proc/net/ip_vs"),
        })
    }

    fn next_sequence(&mut self) -> u32 {
        self.sequence = self.sequence.wrapping_add(1);
        self.sequence
    }

    /// Appends a netlink header and the request's payload to `out`; returns its sequence.
    fn frame(&mut self, request: &Request, ack: bool, out: &mut Vec<u8>) -> Result<u32, String> {
        let payload = request.encode().map_err(|e| e.to_string())?;
        let sequence = self.next_sequence();
        let mut flags = NLM_F_REQUEST;
        if ack {
            flags |= NLM_F_ACK;
        }
        if request.is_dump() {
            flags |= NLM_F_DUMP;
        }
        let len = u32::try_from(NLMSG_HDRLEN + payload.len()).map_err(|_| "too long")?;
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&self.family.to_ne_bytes());
        out.extend_from_slice(&flags.to_ne_bytes());
        out.extend_from_slice(&sequence.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&payload);
        out.resize(align(out.len()), 0);
        Ok(sequence)
    }

    /// Reads one datagram; its messages as (type, flags, sequence, body).
    fn receive(&mut self, operation: &str) -> Result<Vec<Message>, IpvsError> {
        loop {
            // MSG_TRUNC: the length is the datagram's, even when it did not fit.
            match self.socket.recv(&mut self.buffer[..], Msg::TRUNC) {
                Ok((len, _)) if len > self.buffer.len() => {
                    return Err(IpvsError::new(
                        operation,
                        Some(libc::EMSGSIZE),
                        format!(
                            "an answer of {len} bytes did not fit the {} bytes read",
                            self.buffer.len()
                        ),
                    ))
                }
                Ok((len, _)) => {
                    let datagram = self.buffer.get(..len).unwrap_or_default();
                    return Ok(split(datagram));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(operation, &e)),
            }
        }
    }

    fn send(&self, bytes: &[u8], operation: &str) -> Result<(), IpvsError> {
        loop {
            match self.socket.send(bytes, Msg::empty()) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(operation, &e)),
            }
        }
    }

    /// Sends requests that are not dumps, many to a datagram, and collects, per request, its
    /// answers (the replies of a GET) or its refusal. Only the last request of a datagram asks
    /// for an ACK: the kernel handles a datagram's requests in order and answers a request
    /// without the ACK flag only when it refuses it, so the last one's ACK says that every
    /// request before it that has no refusal is done. `fine` says which errnos of a request
    /// mean done (adding what exists, removing what is gone); `name` names request `i` in an
    /// error.
    fn transact(
        &mut self,
        requests: &[(Request, &[i32])],
        name: &dyn Fn(usize) -> String,
    ) -> Vec<Result<Vec<Vec<u8>>, IpvsError>> {
        let mut results: Vec<Result<Vec<Vec<u8>>, IpvsError>> = Vec::with_capacity(requests.len());
        let mut next = 0;
        while next < requests.len() {
            // One datagram: requests next..end.
            let mut bytes = Vec::with_capacity(BATCH_BYTES + 1024);
            let mut sequences: Vec<Option<u32>> = Vec::new();
            let first = next;
            let mut answers: Vec<Option<Result<Vec<Vec<u8>>, IpvsError>>> = Vec::new();
            while next < requests.len() && bytes.len() < BATCH_BYTES && next - first < BATCH {
                let (request, _) = &requests[next];
                let last = next + 1 == requests.len()
                    || bytes.len() >= BATCH_BYTES - 1024
                    || next + 1 - first == BATCH;
                match self.frame(request, last, &mut bytes) {
                    Ok(sequence) => {
                        sequences.push(Some(sequence));
                        answers.push(None);
                    }
                    Err(message) => {
                        sequences.push(None);
                        answers.push(Some(Err(IpvsError::new(
                            name(next),
                            Some(libc::EINVAL),
                            message,
                        ))));
                    }
                }
                next += 1;
            }
            let Some(last_sequence) = sequences.iter().rev().flatten().next().copied() else {
                results.extend(answers.into_iter().flatten());
                continue;
            };
            // The requests that went out, by sequence.
            let index_of: HashMap<u32, usize> = sequences
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.map(|s| (s, i)))
                .collect();
            let mut replies: Vec<Vec<Vec<u8>>> = vec![Vec::new(); sequences.len()];
            let mut lost: Option<IpvsError> = self.send(&bytes, "send IPVS requests").err();
            let mut done = lost.is_some();
            while !done {
                let messages = match self.receive("read the IPVS answers") {
                    Ok(messages) => messages,
                    Err(e) => {
                        lost = Some(e);
                        break;
                    }
                };
                for message in messages {
                    let Some(&i) = index_of.get(&message.sequence) else {
                        continue;
                    };
                    match message.kind {
                        NLMSG_ERROR => {
                            let (request, fine) = &requests[first + i];
                            answers[i] = Some(match error_of(&message.body) {
                                Some(0) => Ok(std::mem::take(&mut replies[i])),
                                Some(errno) if fine.contains(&errno) => Ok(Vec::new()),
                                Some(errno) => Err(refusal(&name(first + i), errno, request)),
                                None => Err(IpvsError::new(
                                    name(first + i),
                                    None,
                                    "a truncated error answer",
                                )),
                            });
                            done |= message.sequence == last_sequence;
                        }
                        kind if kind == self.family => replies[i].push(message.body),
                        _ => {}
                    }
                }
            }
            for (i, answer) in answers.into_iter().enumerate() {
                results.push(match (answer, &lost) {
                    (Some(answer), _) => answer,
                    // Sending or reading failed: what happened to it is unknown, so it is
                    // not done (the next full round reads the kernel and sees).
                    (None, Some(e)) => {
                        Err(IpvsError::new(name(first + i), e.errno, e.message.clone()))
                    }
                    // The datagram was answered to its end without a refusal of this one.
                    (None, None) => Ok(std::mem::take(&mut replies[i])),
                });
            }
        }
        results
    }

    /// One request that is not a dump.
    fn one(
        &mut self,
        request: Request,
        operation: String,
        fine: &[i32],
    ) -> Result<Vec<Vec<u8>>, IpvsError> {
        self.transact(&[(request, fine)], &|_| operation.clone())
            .pop()
            .unwrap_or_else(|| Err(IpvsError::new("IPVS request", None, "no answer")))
    }

    /// A dump, read to its end: the bodies of its messages.
    fn dump(
        &mut self,
        request: Request,
        operation: &dyn Fn() -> String,
    ) -> Result<Vec<Vec<u8>>, IpvsError> {
        let mut bytes = Vec::new();
        let sequence = self
            .frame(&request, true, &mut bytes)
            .map_err(|message| IpvsError::new(operation(), Some(libc::EINVAL), message))?;
        self.send(&bytes, "send an IPVS listing request")
            .map_err(|e| IpvsError::new(operation(), e.errno, e.message))?;
        let mut out = Vec::new();
        loop {
            let messages = self
                .receive("read an IPVS listing")
                .map_err(|e| IpvsError::new(operation(), e.errno, e.message))?;
            for message in messages {
                if message.sequence != sequence {
                    continue;
                }
                match message.kind {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => match error_of(&message.body) {
                        // An ACK after the dump's end.
                        Some(0) => return Ok(out),
                        Some(errno) => return Err(refusal(&operation(), errno, &request)),
                        None => return Err(IpvsError::new(operation(), None, "truncated error")),
                    },
                    kind if kind == self.family => out.push(message.body),
                    _ => {}
                }
            }
        }
    }
}

/// What a refusal means for IPVS, in the words ipvsadm users know.
fn refusal(operation: &str, errno: i32, request: &Request) -> IpvsError {
    let service = matches!(
        request,
        Request::NewService(_) | Request::SetService(_) | Request::DelService(_)
    );
    let destination = matches!(
        request,
        Request::NewDestination(..) | Request::SetDestination(..) | Request::DelDestination { .. }
    );
    let message = match errno {
        libc::ESRCH => "no such service".to_string(),
        libc::ENOENT if destination => "no such real server".to_string(),
        libc::ENOENT if service => "scheduler or persistence engine not found".to_string(),
        libc::EEXIST if service => "service already exists".to_string(),
        libc::EEXIST if destination => "real server already exists".to_string(),
        libc::EBUSY if matches!(request, Request::NewDaemon(_)) => {
            "a sync daemon of that kind already runs".to_string()
        }
        _ => io::Error::from_raw_os_error(errno).to_string(),
    };
    IpvsError::new(operation, Some(errno), message)
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

struct Message {
    kind: u16,
    sequence: u32,
    body: Vec<u8>,
}

/// The messages of a datagram; a truncated tail ends the list.
fn split(mut datagram: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    while datagram.len() >= NLMSG_HDRLEN {
        let field = |at: usize, n: usize| datagram.get(at..at + n).unwrap_or_default();
        let len = u32::from_ne_bytes(field(0, 4).try_into().unwrap_or_default()) as usize;
        let kind = u16::from_ne_bytes(field(4, 2).try_into().unwrap_or_default());
        let sequence = u32::from_ne_bytes(field(8, 4).try_into().unwrap_or_default());
        let Some(body) = (len >= NLMSG_HDRLEN)
            .then(|| datagram.get(NLMSG_HDRLEN..len))
            .flatten()
        else {
            break;
        };
        out.push(Message {
            kind,
            sequence,
            body: body.to_vec(),
        });
        datagram = datagram.get(align(len)..).unwrap_or_default();
    }
    out
}

/// The errno of an NLMSG_ERROR body (0 for an ACK).
fn error_of(body: &[u8]) -> Option<i32> {
    let raw: [u8; 4] = body.get(..4)?.try_into().ok()?;
    Some(i32::from_ne_bytes(raw).saturating_neg())
}

fn wire_error(operation: &str, e: wire::WireError) -> IpvsError {
    IpvsError::new(operation, None, format!("unreadable answer: {e}"))
}

fn single<T>(
    answers: Vec<Vec<u8>>,
    operation: &str,
    decode: impl Fn(&[u8]) -> Result<T, wire::WireError>,
) -> Result<T, IpvsError> {
    let body = answers
        .first()
        .ok_or_else(|| IpvsError::new(operation, None, "no answer"))?;
    decode(body).map_err(|e| wire_error(operation, e))
}

/// What a change is to the kernel, with what it is called in messages and which refusals
/// mean "already so".
fn request_of(change: &Change) -> (Request, &'static [i32]) {
    const EXISTS: &[i32] = &[libc::EEXIST];
    const GONE_SERVICE: &[i32] = &[libc::ESRCH];
    const GONE_DESTINATION: &[i32] = &[libc::ENOENT];
    match change {
        Change::AddService(s) => (Request::NewService(s.clone()), EXISTS),
        Change::EditService(s) => (Request::SetService(s.clone()), &[]),
        Change::RemoveService(key) => (Request::DelService(*key), GONE_SERVICE),
        Change::AddDestination(key, d) => (Request::NewDestination(*key, d.clone()), EXISTS),
        Change::EditDestination(key, d) => (Request::SetDestination(*key, d.clone()), &[]),
        Change::RemoveDestination {
            service,
            address,
            port,
        } => (
            Request::DelDestination {
                service: *service,
                address: *address,
                port: *port,
            },
            GONE_DESTINATION,
        ),
    }
}

impl Ipvs for KernelIpvs {
    fn info(&mut self) -> Result<Info, IpvsError> {
        let operation = "read the IPVS version";
        let answers = self.one(Request::GetInfo, operation.into(), &[])?;
        single(answers, operation, wire::decode_info_reply)
    }

    fn services(&mut self) -> Result<Vec<ServiceEntry>, IpvsError> {
        let operation = "list the IPVS services";
        self.dump(Request::GetServices, &|| operation.to_string())?
            .iter()
            .map(|body| wire::decode_service_reply(body).map_err(|e| wire_error(operation, e)))
            .collect()
    }

    fn destinations(&mut self, service: &ServiceKey) -> Result<Vec<DestinationEntry>, IpvsError> {
        // Named only when something fails: listing 10,000 services asks this 10,000 times.
        let operation = || format!("list the real servers of {service}");
        let family = service.family();
        self.dump(Request::GetDestinations(*service), &operation)?
            .iter()
            .map(|body| {
                wire::decode_destination_reply(body, family)
                    .map_err(|e| wire_error(&operation(), e))
            })
            .collect()
    }

    /// One dump of the services (their every detail) and one read of /proc/net/ip_vs (their
    /// destinations), instead of a dump per service. A service the text does not name without
    /// doubt (IPv4 and IPv6 services with one firewall mark look alike there, and one added
    /// between the two reads is missing) has its destinations dumped over netlink.
    fn listing(&mut self) -> Result<Vec<TableEntry>, IpvsError> {
        let services = self.services()?;
        // Without the text every service has its destinations dumped, from the dump above.
        let listed = match std::fs::read_to_string(&self.listing) {
            Ok(text) => procfs::parse(&text).unwrap_or_else(|e| {
                log::warn!("ipvs: {e}; listing over netlink");
                Vec::new()
            }),
            Err(e) => {
                log::debug!(
                    "ipvs: {}: {e}; listing over netlink",
                    self.listing.display()
                );
                Vec::new()
            }
        };
        let mut by_key: HashMap<ListedKey, Vec<DestinationEntry>> =
            HashMap::with_capacity(listed.len());
        let mut doubtful = std::collections::HashSet::new();
        for service in listed {
            if by_key.insert(service.key, service.destinations).is_some() {
                doubtful.insert(service.key);
            }
        }
        let mut table = Vec::with_capacity(services.len());
        for entry in services {
            let listed_key = match entry.service.key {
                ServiceKey::Address {
                    protocol,
                    address,
                    port,
                } => ListedKey::Address {
                    protocol,
                    address,
                    port,
                },
                ServiceKey::Fwmark { mark, .. } => ListedKey::Fwmark(mark),
            };
            let known = if doubtful.contains(&listed_key) {
                None
            } else {
                by_key.remove(&listed_key)
            };
            let destinations = match known {
                Some(destinations) => destinations,
                None => match self.destinations(&entry.service.key) {
                    Ok(destinations) => destinations,
                    // Removed since the dump of the services: not in the table any more.
                    Err(e) if e.errno == Some(libc::ESRCH) => continue,
                    Err(e) => return Err(e),
                },
            };
            table.push((entry, destinations));
        }
        Ok(table)
    }

    fn add_service(&mut self, service: &Service) -> Result<(), IpvsError> {
        self.apply(&[Change::AddService(service.clone())])
            .pop()
            .unwrap_or(Ok(()))
    }

    fn edit_service(&mut self, service: &Service) -> Result<(), IpvsError> {
        self.apply(&[Change::EditService(service.clone())])
            .pop()
            .unwrap_or(Ok(()))
    }

    fn remove_service(&mut self, service: &ServiceKey) -> Result<(), IpvsError> {
        self.apply(&[Change::RemoveService(*service)])
            .pop()
            .unwrap_or(Ok(()))
    }

    fn add_destination(
        &mut self,
        service: &ServiceKey,
        destination: &super::Destination,
    ) -> Result<(), IpvsError> {
        self.apply(&[Change::AddDestination(*service, destination.clone())])
            .pop()
            .unwrap_or(Ok(()))
    }

    fn edit_destination(
        &mut self,
        service: &ServiceKey,
        destination: &super::Destination,
    ) -> Result<(), IpvsError> {
        self.apply(&[Change::EditDestination(*service, destination.clone())])
            .pop()
            .unwrap_or(Ok(()))
    }

    fn remove_destination(
        &mut self,
        service: &ServiceKey,
        address: IpAddr,
        port: u16,
    ) -> Result<(), IpvsError> {
        self.apply(&[Change::RemoveDestination {
            service: *service,
            address,
            port,
        }])
        .pop()
        .unwrap_or(Ok(()))
    }

    fn zero(&mut self, service: Option<&ServiceKey>) -> Result<(), IpvsError> {
        let operation = match service {
            Some(key) => format!("zero the counters of {key}"),
            None => "zero every counter".to_string(),
        };
        self.one(Request::Zero(service.copied()), operation, &[])
            .map(|_| ())
    }

    fn timeouts(&mut self) -> Result<Timeouts, IpvsError> {
        let operation = "read the IPVS timeouts";
        let answers = self.one(Request::GetConfig, operation.into(), &[])?;
        single(answers, operation, wire::decode_config_reply)
    }

    fn set_timeouts(&mut self, timeouts: &Timeouts) -> Result<(), IpvsError> {
        let operation = format!(
            "set the IPVS timeouts (tcp {} s, tcpfin {} s, udp {} s)",
            timeouts.tcp, timeouts.tcp_fin, timeouts.udp
        );
        self.one(Request::SetConfig(*timeouts), operation, &[])
            .map(|_| ())
    }

    fn daemons(&mut self) -> Result<Vec<SyncDaemon>, IpvsError> {
        let operation = "list the connection sync daemons";
        self.dump(Request::GetDaemons, &|| operation.to_string())?
            .iter()
            .map(|body| wire::decode_daemon_reply(body).map_err(|e| wire_error(operation, e)))
            .collect()
    }

    fn start_daemon(&mut self, daemon: &SyncDaemon) -> Result<(), IpvsError> {
        let operation = format!(
            "start the {:?} sync daemon on {} (sync id {})",
            daemon.state, daemon.interface, daemon.sync_id
        );
        self.one(Request::NewDaemon(daemon.clone()), operation, &[])
            .map(|_| ())
    }

    fn stop_daemon(&mut self, state: SyncState) -> Result<(), IpvsError> {
        let operation = format!("stop the {state:?} sync daemon");
        self.one(Request::DelDaemon(state), operation, &[libc::ESRCH])
            .map(|_| ())
    }

    fn apply(&mut self, changes: &[Change]) -> Vec<Result<(), IpvsError>> {
        let requests: Vec<(Request, &[i32])> = changes.iter().map(request_of).collect();
        self.transact(&requests, &|i| {
            changes.get(i).map(ToString::to_string).unwrap_or_default()
        })
        .into_iter()
        .map(|answer| answer.map(|_| ()))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, sequence: u32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&0u16.to_ne_bytes());
        out.extend_from_slice(&sequence.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(body);
        out.resize(align(out.len()), 0);
        out
    }

    #[test]
    fn splits_a_datagram_and_stops_at_a_truncated_message() {
        let mut datagram = message(NLMSG_ERROR, 7, &(-17i32).to_ne_bytes());
        datagram.extend(message(0x20, 8, &[1, 2, 3]));
        datagram.extend(message(NLMSG_DONE, 9, &[0; 4]));
        let messages = split(&datagram);
        assert_eq!(messages.len(), 3);
        assert_eq!(error_of(&messages[0].body), Some(libc::EEXIST));
        assert_eq!((messages[1].kind, messages[1].sequence), (0x20, 8));
        assert_eq!(messages[1].body, vec![1, 2, 3]);

        // A length beyond the datagram, or below a header, ends the reading.
        let mut bad = message(0x20, 1, &[0; 8]);
        bad[0] = 200;
        assert!(split(&bad).is_empty());
        bad[0] = 3;
        assert!(split(&bad).is_empty());
        assert_eq!(error_of(&[1, 2]), None);
    }

    #[test]
    fn refusals_speak_of_services_and_real_servers() {
        let key = ServiceKey::Fwmark {
            family: super::super::Family::V4,
            mark: 3,
        };
        let gone = refusal(
            "remove service fwmark 3",
            libc::ESRCH,
            &Request::DelService(key),
        );
        assert_eq!(gone.message, "no such service");
        let sched = refusal(
            "add service fwmark 3 (nope)",
            libc::ENOENT,
            &Request::NewService(Service::new(key, "nope")),
        );
        assert_eq!(sched.message, "scheduler or persistence engine not found");
        assert_eq!(sched.errno, Some(libc::ENOENT));
    }
}
