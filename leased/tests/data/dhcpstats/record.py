# How dhcpstats-47dcec5.json was recorded (by hand, once; CI never runs this, nor DHCPStats).
# Needs a copy of joshuaboniface/dhcpstats' dhcpstats.py (47dcec5) beside this file and, in a
# virtualenv: flask==2.1.3 werkzeug==2.1.2 flask-restful apscheduler pyyaml (its /leases uses
# send_file(attachment_filename=...), gone in newer Flask). Run from this directory:
#   python record.py > dhcpstats-47dcec5.json.answers
import gzip, json, os, sys, tempfile
here = os.path.dirname(os.path.abspath(__file__))
data = tempfile.mkdtemp()
cfg = os.path.join(data, 'dhcpstats.yml')
with open(cfg, 'w') as f:
    f.write(f"""dhcpstats:
  debug: false
  data_directory: {data}/data
  auto_refresh: false
  refresh_time: 60
  auth_string: isc-key-0123456789
  listen: 127.0.0.1:0
  subnet_file: {here}/dhcpd.conf
  static_file: {here}/dhcpd.conf
  leases_file: {here}/dhcpd.leases
""")
os.environ['DHCPSTATS_CONFIG_FILE'] = cfg
sys.path.insert(0, here)
import dhcpstats
c = dhcpstats.app.test_client()
H = {'X-Api-Key': 'isc-key-0123456789'}
out = {}
r = c.post('/refresh', headers=H); out['POST /refresh'] = [r.status_code, r.get_json()]
for p in ['/', '/subnets', '/subnets/all', '/subnets/list', '/subnets/198.18.0.0', '/counts', '/subnets/10.0.0.0']:
    r = c.get(p, headers=H); out['GET ' + p] = [r.status_code, r.get_json()]
r = c.get('/leases', headers=H)
out['GET /leases'] = [r.status_code, r.headers.get('Content-Type'), r.headers.get('Content-Disposition'),
                      gzip.decompress(r.data) == open(os.path.join(here, 'dhcpd.leases'), 'rb').read()]
r = c.get('/counts'); out['GET /counts no key'] = [r.status_code, r.get_json()]
r = c.get('/refresh', headers=H); out['GET /refresh'] = [r.status_code]
print(json.dumps(out, indent=1))
