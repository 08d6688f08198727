// zigbee-herdsman, unmodified, as the host stack of `bridge-emu dongle --protocol znp`:
//
//   node run.mjs --url tcp://127.0.0.1:PORT --dir DIR --expect N [--timeout S] [--ota IEEE=FILE]
//
// It starts a herdsman Controller (adapter zstack) on the dongle's TCP socket, with its database and
// coordinator backup under DIR and a fixed network (key, PAN, extended PAN, channel), permits joining,
// and prints one JSON line per event on stdout: started, permit, joined, announce, interview (with
// what herdsman learnt: ieee, modelID, manufacturerName, endpoints and their clusters), and with --ota
// the result of herdsman's own OTA update of that device from FILE. It ends with a "done" line once N
// devices are interviewed (and the update is over), or a "timeout" line after --timeout seconds, and
// exits 0 only if everything asked for happened. Herdsman's log goes to stderr.
import {Controller, Zcl, parseOtaImage, setLogger} from "zigbee-herdsman";
import fs from "node:fs";
import path from "node:path";
import {parseArgs} from "node:util";

const {values: args} = parseArgs({
    options: {
        url: {type: "string"},
        dir: {type: "string"},
        expect: {type: "string", default: "1"},
        timeout: {type: "string", default: "60"},
        ota: {type: "string"},
        verbose: {type: "boolean", default: false},
    },
});
if (!args.url || !args.dir) {
    console.error("usage: node run.mjs --url tcp://HOST:PORT --dir DIR --expect N [--timeout S] [--ota IEEE=FILE]");
    process.exit(2);
}
const expected = Number(args.expect);
const started = Date.now();
const emit = (event, fields = {}) =>
    process.stdout.write(`${JSON.stringify({event, t: (Date.now() - started) / 1000, ...fields})}\n`);

// herdsman's log, to stderr (debug only with --verbose, it is chatty)
const log = (level) => (message, namespace) => {
    if (level !== "debug" || args.verbose) process.stderr.write(`${level} ${namespace}: ${message instanceof Function ? message() : message}\n`);
};
setLogger({debug: log("debug"), info: log("info"), warning: log("warning"), error: log("error")});

fs.mkdirSync(args.dir, {recursive: true});
const controller = new Controller({
    network: {
        panID: 0x1a62,
        extendedPanID: [0xdd, 0xee, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66],
        channelList: [15],
        networkKey: [1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 13],
        networkKeyDistribute: false,
    },
    serialPort: {path: args.url, adapter: "zstack"},
    databasePath: path.join(args.dir, "database.db"),
    databaseBackupPath: path.join(args.dir, "database.db.backup"),
    backupPath: path.join(args.dir, "coordinator_backup.json"),
    adapter: {disableLED: false},
    acceptJoiningDeviceHandler: async () => true,
});

const interviewed = new Map();
let otaWanted = undefined;
if (args.ota) {
    const [ieee, file] = args.ota.split("=");
    otaWanted = {ieee, file, state: "waiting"};
}
let finished = false;

async function finish(event, code, fields = {}) {
    if (finished) return;
    finished = true;
    emit(event, fields);
    clearTimeout(timer);
    try {
        await controller.stop();
    } catch (error) {
        process.stderr.write(`stop: ${error}\n`);
    }
    process.exit(code);
}

const timer = setTimeout(() => finish("timeout", 1, {interviewed: [...interviewed.keys()]}), Number(args.timeout) * 1000);

function describe(device) {
    return {
        ieee: device.ieeeAddr,
        nwk: device.networkAddress,
        type: device.type,
        modelID: device.modelID ?? null,
        manufacturerName: device.manufacturerName ?? null,
        manufacturerID: device.manufacturerID ?? null,
        powerSource: device.powerSource ?? null,
        softwareBuildID: device.softwareBuildID ?? null,
        endpoints: device.endpoints.map((ep) => ({
            id: ep.ID,
            profile: ep.profileID ?? null,
            deviceID: ep.deviceID ?? null,
            inputClusters: ep.inputClusters,
            outputClusters: ep.outputClusters,
        })),
    };
}

function maybeDone() {
    if (interviewed.size >= expected && (!otaWanted || otaWanted.state === "over")) {
        finish("done", otaWanted && !otaWanted.ok ? 1 : 0, {interviewed: [...interviewed.keys()]});
    }
}

async function runOta(device) {
    // herdsman's own OTA server (Device.updateOta) with FILE, a firmware file (not a .json index), as the
    // source: herdsman notifies the device, parses the file, answers its query and serves its blocks
    otaWanted.state = "running";
    const file = path.resolve(otaWanted.file);
    const image = parseOtaImage(fs.readFileSync(file));
    otaWanted.to = {fileVersion: image.header.fileVersion};
    let last = -10;
    device
        .updateOta({url: file, downgrade: false}, undefined, undefined, {}, (progress, remaining) => {
            if (progress - last >= 25 || progress === 100) {
                last = progress;
                emit("ota_progress", {ieee: device.ieeeAddr, progress, remaining});
            }
            // 100 comes once the device's Upgrade End Request is answered: then herdsman waits (up to 120 s) for
            // a device announce; the device's next query says whether it runs the new image
            if (progress === 100 && otaWanted.state === "running") otaWanted.state = "ended";
        }, {requestTimeout: 150000, responseDelay: 0, baseSize: 50})
        .then(([from, to]) => emit("ota_result", {ieee: device.ieeeAddr, from: from ?? null, to: to ?? null}))
        .catch((error) => {
            otaWanted.ok = false;
            otaWanted.state = "over";
            emit("ota_result", {ieee: device.ieeeAddr, error: String(error?.message ?? error)});
            maybeDone();
        });
}

controller.on("message", async ({type, device, endpoint, data, cluster, meta}) => {
    if (cluster !== "genOta" || type !== "commandQueryNextImageRequest" || device.otaInProgress) return;
    if (otaWanted?.state === "ended" && device.ieeeAddr === otaWanted.ieee) {
        emit("ota_query", {ieee: device.ieeeAddr, fileVersion: data.fileVersion});
        if (data.fileVersion === otaWanted.to.fileVersion) {
            otaWanted.ok = true;
            otaWanted.state = "over";
        }
    }
    try {
        await endpoint.commandResponse("genOta", "queryNextImageResponse", {status: Zcl.Status.NO_IMAGE_AVAILABLE},
            undefined, meta.zclTransactionSequenceNumber);
    } catch (error) {
        process.stderr.write(`query answer to ${device.ieeeAddr}: ${error}\n`);
    }
    maybeDone();
});

controller.on("deviceJoined", ({device}) => emit("joined", {ieee: device.ieeeAddr, nwk: device.networkAddress}));
controller.on("deviceAnnounce", ({device}) => emit("announce", {ieee: device.ieeeAddr, nwk: device.networkAddress}));
controller.on("deviceLeave", ({ieeeAddr}) => emit("left", {ieee: ieeeAddr}));
controller.on("adapterDisconnected", () => finish("disconnected", 1));
controller.on("deviceInterview", ({status, device}) => {
    if (status === "started") return;
    emit("interview", {status, ...describe(device)});
    if (status !== "successful") return;
    interviewed.set(device.ieeeAddr, true);
    if (otaWanted && otaWanted.state === "waiting" && device.ieeeAddr === otaWanted.ieee) {
        runOta(device);
    }
    maybeDone();
});

try {
    const result = await controller.start();
    const coordinator = controller.getDevicesByType("Coordinator")[0];
    const version = await controller.getCoordinatorVersion();
    const network = await controller.getNetworkParameters();
    emit("started", {result, coordinator: coordinator?.ieeeAddr ?? null, version, network});
    await controller.permitJoin(120);
    emit("permit", {seconds: 120});
} catch (error) {
    await finish("failed", 1, {error: String(error?.stack ?? error)});
}
